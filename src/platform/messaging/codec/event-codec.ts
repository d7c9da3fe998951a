import { Packr } from 'msgpackr';
import type protobuf from 'protobufjs';
import { Check, Errors } from 'typebox/value';
import type { EventType } from '../../context/events.ts';
import type { OutboxEvent } from '../broker.ts';
import { PROTO_PACKAGE, protoTypes } from './proto-schema.ts';

import { EVENT_ENCODINGS, type EventEncoding } from './encodings.ts';

export { EVENT_ENCODINGS, type EventEncoding };

/** The content type each encoding travels under: a consumer decodes what the message says it is. */
export const CONTENT_TYPES: Readonly<Record<EventEncoding, string>> = {
  json: 'application/json',
  msgpack: 'application/msgpack',
  protobuf: 'application/x-protobuf',
};

/** Protobuf bodies name their message: one event's Envelope or a Batch of them. */
const PROTO_BATCH = `${CONTENT_TYPES.protobuf}; proto=${PROTO_PACKAGE}.Batch`;

/** A message that is not an event this codec can read; the message says why, for the dead letter. */
export class EventDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventDecodeError';
  }
}

export interface EncodedEvent {
  body: Buffer;
  contentType: string;
}

export interface EventCodec {
  /** What this process writes; it reads every encoding whatever this is. */
  readonly encoding: EventEncoding;
  /** One event as one message body. */
  encode(event: OutboxEvent): EncodedEvent;
  /** Several events of one partition as one message body, in order. */
  encodeMany(events: readonly OutboxEvent[]): EncodedEvent;
  /** The event in `body`; throws EventDecodeError for an unknown content type or a body that is not an event. */
  decode(body: Uint8Array, contentType: string | undefined): OutboxEvent;
  /** The events of a body written by encode or encodeMany. */
  decodeMany(body: Uint8Array, contentType: string | undefined): OutboxEvent[];
}

/**
 * Why `event`'s payload does not match the schema of its declared type (naming the field), or undefined when it
 * does or the type is not among `events`.
 * @example payloadMismatch(new Map([[NoteCreated.name, NoteCreated]]), event) // 'event note.created: payload /id must be integer'
 */
export function payloadMismatch(
  events: ReadonlyMap<string, EventType>,
  event: Pick<OutboxEvent, 'type' | 'payload'>,
): string | undefined {
  const type = events.get(event.type);
  if (!type || Check(type.schema, event.payload)) return undefined;
  const first = [...Errors(type.schema, event.payload)][0];
  return `event ${event.type}: payload ${first?.instancePath || '/'} ${first?.message ?? 'does not match its schema'}`;
}

/** The type of the events undecodableEvent makes. */
export const UNDECODABLE = 'undecodable';

/**
 * What a dead letter keeps of a message no codec could read: its body (base64) and content type, under the
 * type `undecodable`, which no consumer handles (a replay of it is acknowledged unseen).
 */
export function undecodableEvent(id: string, body: Uint8Array, contentType: string | undefined): OutboxEvent {
  return {
    id,
    type: UNDECODABLE,
    key: '',
    payload: { contentType: contentType ?? null, base64: Buffer.from(body).toString('base64') },
    headers: {},
    createdAt: '',
  };
}

function envelopeOf(value: unknown, encoding: EventEncoding): OutboxEvent {
  const v = value as Partial<OutboxEvent> | null;
  if (
    !v ||
    typeof v !== 'object' ||
    typeof v.id !== 'string' ||
    typeof v.type !== 'string' ||
    typeof v.key !== 'string' ||
    v.id === '' ||
    v.type === ''
  )
    throw new EventDecodeError(`the ${encoding} body is not an event (an id, a type and a key)`);
  const headers = v.headers ?? {};
  if (typeof headers !== 'object' || Object.values(headers).some((h) => typeof h !== 'string'))
    throw new EventDecodeError(`the ${encoding} body's headers are not strings`);
  return {
    id: v.id,
    type: v.type,
    key: v.key,
    payload: v.payload,
    headers,
    createdAt: typeof v.createdAt === 'string' ? v.createdAt : '',
  };
}

interface ProtoEnvelope {
  id: string;
  type: string;
  key: string;
  headers: Record<string, string>;
  created_at: string;
  payload: Uint8Array;
  json_payload: Uint8Array;
}

/**
 * Encodes and decodes events in JSON, MessagePack or Protocol Buffers (decision 0032). Protobuf payloads use the
 * message derived from their type's schema (proto-schema.ts); a type not among `events`, or a payload its
 * message cannot hold, travels as JSON inside the envelope, so the relay never fails on an encoding. Schemas are
 * checked where events are written (publish) and where they are handled (the consumer runner), not here.
 * @example const codec = createEventCodec({ encoding: 'msgpack', events: [NoteCreated] }); codec.encode(event)
 */
export function createEventCodec(options: { encoding: EventEncoding; events?: readonly EventType[] }): EventCodec {
  const { encoding } = options;
  const proto = protoTypes(options.events ?? []);
  // Plain maps, no msgpackr extensions: any MessagePack reader reads what this writes.
  // 64-bit integers from another writer decode as numbers (as JSON would), never as BigInts.
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });
  const encodings = new Map(Object.entries(CONTENT_TYPES).map(([e, ct]) => [ct, e as EventEncoding]));

  function toEnvelope(event: OutboxEvent): protobuf.Message {
    const message = proto.byEvent.get(event.type);
    let payload: Uint8Array | undefined;
    if (message && message.verify(event.payload as Record<string, unknown>) === null) {
      try {
        payload = message.encode(message.fromObject(event.payload as Record<string, unknown>)).finish();
      } catch {
        payload = undefined;
      }
    }
    return proto.envelope.create({
      id: event.id,
      type: event.type,
      key: event.key,
      headers: event.headers ?? {},
      created_at: event.createdAt,
      ...(payload ? { payload } : { json_payload: Buffer.from(JSON.stringify(event.payload ?? null)) }),
    });
  }

  function fromEnvelope(decoded: protobuf.Message): OutboxEvent {
    const e = proto.envelope.toObject(decoded, { defaults: true }) as ProtoEnvelope;
    const message = proto.byEvent.get(e.type);
    if (!message && e.json_payload.length === 0 && e.payload.length > 0)
      throw new EventDecodeError(
        `a protobuf payload of ${e.type || 'an unnamed type'}, whose schema this reader does not know`,
      );
    const payload =
      e.json_payload.length > 0 || !message
        ? JSON.parse(Buffer.from(e.json_payload).toString('utf8') || 'null')
        : message.toObject(message.decode(e.payload), { longs: Number, defaults: true });
    return envelopeOf(
      { id: e.id, type: e.type, key: e.key, headers: e.headers, createdAt: e.created_at, payload },
      'protobuf',
    );
  }

  function encodingOf(contentType: string | undefined): EventEncoding {
    // Parameters (`; charset=utf-8`, `; proto=...`) do not change the encoding; no content type is JSON (as before).
    const bare = contentType?.split(';')[0]!.trim().toLowerCase() ?? '';
    const found = bare === '' ? 'json' : encodings.get(bare);
    if (!found)
      throw new EventDecodeError(
        `unknown content type "${contentType}": not one of ${[...encodings.keys()].join(', ')}`,
      );
    return found;
  }

  function read<T>(what: EventEncoding, body: Uint8Array, parse: () => T): T {
    try {
      return parse();
    } catch (error) {
      if (error instanceof EventDecodeError) throw error;
      throw new EventDecodeError(`corrupt ${what} body (${body.length} bytes): ${(error as Error).message}`);
    }
  }

  return {
    encoding,
    encode(event) {
      switch (encoding) {
        case 'json':
          return { body: Buffer.from(JSON.stringify(event)), contentType: CONTENT_TYPES.json };
        case 'msgpack':
          return { body: packr.pack(event), contentType: CONTENT_TYPES.msgpack };
        case 'protobuf':
          return {
            body: Buffer.from(proto.envelope.encode(toEnvelope(event)).finish()),
            contentType: CONTENT_TYPES.protobuf,
          };
      }
    },
    encodeMany(events) {
      switch (encoding) {
        case 'json':
          return {
            body: Buffer.from(events.length === 1 ? JSON.stringify(events[0]) : JSON.stringify(events)),
            contentType: CONTENT_TYPES.json,
          };
        case 'msgpack':
          return { body: packr.pack(events), contentType: CONTENT_TYPES.msgpack };
        case 'protobuf': {
          const batch = proto.batch.create({ events: events.map(toEnvelope) });
          return { body: Buffer.from(proto.batch.encode(batch).finish()), contentType: PROTO_BATCH };
        }
      }
    },
    decode(body, contentType) {
      const what = encodingOf(contentType);
      return read(what, body, () => {
        switch (what) {
          case 'json':
            return envelopeOf(JSON.parse(Buffer.from(body).toString('utf8')), what);
          case 'msgpack':
            return envelopeOf(packr.unpack(body), what);
          case 'protobuf':
            return fromEnvelope(proto.envelope.decode(body));
        }
      });
    },
    decodeMany(body, contentType) {
      const what = encodingOf(contentType);
      return read(what, body, () => {
        switch (what) {
          case 'json':
          case 'msgpack': {
            const value: unknown =
              what === 'json' ? JSON.parse(Buffer.from(body).toString('utf8')) : packr.unpack(body);
            const list = Array.isArray(value) ? value : [value];
            if (list.length === 0) throw new EventDecodeError(`the ${what} body holds no event`);
            return list.map((v) => envelopeOf(v, what));
          }
          case 'protobuf': {
            if (!/proto=stratum\.events\.Batch/.test(contentType ?? ''))
              return [fromEnvelope(proto.envelope.decode(body))];
            const batch = proto.batch.decode(body) as unknown as { events?: protobuf.Message[] };
            if (!batch.events?.length) throw new EventDecodeError('the protobuf batch holds no event');
            return batch.events.map(fromEnvelope);
          }
        }
      });
    },
  };
}

/** The codec of a process that was given none: JSON, no schemas (what every adapter wrote before encodings). */
export const JSON_EVENTS = createEventCodec({ encoding: 'json' });
