import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { headers, Match, type MsgHdrs } from '@nats-io/transport-node';
import { AppError } from '../../errors/app-error.ts';
import { partitionOf, type OutboxEvent } from '../broker.ts';
import { JSON_EVENTS, undecodableEvent, type EventCodec } from '../codec/event-codec.ts';
import type { NatsLayout } from './nats-layout.ts';

/** The NATS header naming the encoding of a message's body; a message without it is JSON (decision 0032). */
export const CONTENT_TYPE_HEADER = 'content-type';

/** The most events one message carries, and about the most bytes of its encoded body (a larger event goes alone). */
export interface MessageLimits {
  events: number;
  bytes: number;
}

export const DEFAULT_MESSAGE_LIMITS: MessageLimits = { events: 100, bytes: 256 * 1024 };

/** One JetStream message: its body, its content type and the id JetStream drops a second publish of. */
export interface EventsMessage {
  body: Buffer;
  contentType: string;
  msgID: string;
  /** The ids of the events it carries, in order. */
  ids: string[];
}

/**
 * Packs one partition's consecutive events into messages, in order, each body written by `codec.encodeMany` (in
 * JSON: a message of one event is the event's JSON, one of several a JSON array). A message of one event has the
 * event id as its message id; a message of several a digest of their ids, so a re-send of the same events
 * together is dropped and one of other events never is (whichever encoding either was written in). `again`: the
 * groups of an earlier publish of these events that may have been stored (its call failed); as long as the
 * events start with the same groups they are packed the same, so JetStream drops what it already has.
 * A message takes up to `limits.events` events while its encoded body stays within `limits.bytes`: the events
 * are encoded together once, and only a body over the limit is cut, where the events' own encoded sizes say.
 * @example packEvents(events, { events: 100, bytes: 262_144 }, [], codec) // [{ body, contentType, msgID: 'events-3f2a...', ids }]
 */
export function packEvents(
  events: readonly OutboxEvent[],
  limits: MessageLimits,
  again: ReadonlyArray<readonly string[]> = [],
  codec: EventCodec = JSON_EVENTS,
): EventsMessage[] {
  const messages: EventsMessage[] = [];
  const message = (taken: readonly OutboxEvent[]): EventsMessage => {
    const { body, contentType } = codec.encodeMany(taken);
    const ids = taken.map((e) => e.id);
    return {
      body,
      contentType,
      msgID: ids.length === 1 ? ids[0]! : `events-${createHash('sha256').update(ids.join(',')).digest('hex')}`,
      ids,
    };
  };
  let i = 0;
  for (const group of again) {
    if (i + group.length > events.length || !group.every((id, k) => events[i + k]!.id === id)) break;
    messages.push(message(events.slice(i, i + group.length)));
    i += group.length;
  }
  while (i < events.length) {
    let taken = events.slice(i, i + Math.max(1, limits.events));
    let packed = message(taken);
    if (taken.length > 1 && packed.body.length > limits.bytes) {
      taken = taken.slice(0, fitting(taken, limits.bytes, codec));
      packed = message(taken);
    }
    messages.push(packed);
    i += taken.length;
  }
  return messages;
}

/**
 * How many of `events`, from the first, fit in `bytes` by their own encoded sizes and what putting them together
 * adds (at least one).
 */
function fitting(events: readonly OutboxEvent[], bytes: number, codec: EventCodec): number {
  let total = 0;
  let n = 0;
  for (const event of events) {
    const size = framed(codec, codec.encode(event).body.length);
    if (n > 0 && total + size > bytes) break;
    total += size;
    n++;
  }
  return n;
}

/**
 * An encoded event's size inside a message of several: a JSON array adds a comma, a MessagePack array's header
 * at most a byte an event, a Protobuf batch a field tag and the length (a varint) before each event.
 */
function framed(codec: EventCodec, size: number): number {
  switch (codec.encoding) {
    case 'json':
    case 'msgpack':
      return size + 1;
    case 'protobuf': {
      let varint = 1;
      for (let rest = size >>> 7; rest > 0; rest >>>= 7) varint++;
      return size + 1 + varint;
    }
  }
}

/** The content type a message says its body is in; none (old messages, dead-letter replays) is JSON. */
export function contentTypeOf(h: MsgHdrs | undefined): string | undefined {
  return h?.get(CONTENT_TYPE_HEADER, Match.IgnoreCase) || undefined;
}

/**
 * The events of a message, in whichever encoding its content type names: one event, or the several packEvents
 * put together. Throws EventDecodeError saying why when the body is none (an unknown content type, a corrupt body).
 * @example unpackEvents(msg.data, contentTypeOf(msg.headers), codec) // [event, ...]
 */
export function unpackEvents(
  body: Uint8Array,
  contentType: string | undefined,
  codec: EventCodec = JSON_EVENTS,
): OutboxEvent[] {
  return codec.decodeMany(body, contentType);
}

/**
 * The placeholder a dead letter keeps of a message no codec could read. Its id is a UUID derived from where the
 * message is (the stream and its sequence there), so it is the same however often the message comes, and a
 * replay of the letter can be recorded as processed like any event.
 * @example undecodableMessage('STRATUM_EVENTS', 42, msg.data, 'text/xml') // { id: '5d1c...', type: 'undecodable', ... }
 */
export function undecodableMessage(
  stream: string,
  seq: number,
  body: Uint8Array,
  contentType: string | undefined,
): OutboxEvent {
  const hex = createHash('sha256').update(`${stream}/${seq}`).digest('hex');
  // RFC 9562 version 8 (custom) with the RFC variant: any UUID column takes it.
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  const parts = [
    hex.slice(0, 8),
    hex.slice(8, 12),
    `8${hex.slice(13, 16)}`,
    `${variant}${hex.slice(17, 20)}`,
    hex.slice(20, 32),
  ];
  return undecodableEvent(parts.join('-'), body, contentType);
}

/**
 * Packs each partition's events for one publish call in `codec`'s encoding, remembering the packing of a call that
 * failed: the relay sends those events again (with more behind them, perhaps), and the same groups give the same
 * message ids.
 * @example const packer = createPacker(DEFAULT_MESSAGE_LIMITS, codec); const messages = packer.pack(3, events); packer.failed(3, messages);
 */
export function createPacker(limits: MessageLimits, codec: EventCodec = JSON_EVENTS) {
  const unsettled = new Map<number, string[][]>();
  return {
    pack: (partition: number, events: readonly OutboxEvent[]) =>
      packEvents(events, limits, unsettled.get(partition), codec),
    /** The call that carried `messages` failed: any of them may be stored already, and all come again. */
    failed: (partition: number, messages: readonly EventsMessage[]) => {
      unsettled.set(
        partition,
        messages.map((m) => m.ids),
      );
    },
    /** The call succeeded: every message of it was stored. */
    stored: (partition: number) => {
      unsettled.delete(partition);
    },
  };
}

export type Packer = ReturnType<typeof createPacker>;

/**
 * Publishes `events` to their partition subjects and resolves once JetStream has stored every one. A partition's
 * consecutive events travel together in messages (packEvents), their content type in a `content-type` header, so
 * a consumer takes them in one delivery and one acknowledgement. Partitions are published side by side, but within
 * a partition each message waits for the previous one's PubAck: pipelined publishes could, across a reconnect,
 * store a later message and lose an earlier one, and the re-send would then land out of order.
 * @example await publishInPartitionOrder(js, natsLayout('stratum'), 8, events, createPacker(DEFAULT_MESSAGE_LIMITS));
 */
export async function publishInPartitionOrder(
  js: JetStreamClient,
  layout: NatsLayout,
  partitions: number,
  events: readonly OutboxEvent[],
  packer: Packer,
): Promise<void> {
  const byPartition = new Map<number, OutboxEvent[]>();
  for (const event of events) {
    const partition = partitionOf(event.key, partitions);
    const list = byPartition.get(partition);
    if (list) list.push(event);
    else byPartition.set(partition, [event]);
  }
  const packed = [...byPartition].map(([partition, list]) => ({ partition, messages: packer.pack(partition, list) }));
  // Every chain settles before this resolves or rejects, so nothing is still in flight when the caller retries.
  const results = await Promise.allSettled(
    packed.map(async ({ partition, messages }) => {
      for (const message of messages) {
        // Headers of their own: the client adds the message id to the ones it is given.
        const h = headers();
        h.set(CONTENT_TYPE_HEADER, message.contentType);
        await js.publish(layout.eventSubject(partition), message.body, { msgID: message.msgID, headers: h });
      }
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  // The caller sends the whole call again, the partitions that were stored too: remember how each was packed.
  for (const { partition, messages } of packed) {
    if (failed) packer.failed(partition, messages);
    else packer.stored(partition);
  }
  if (failed) {
    throw new AppError(
      'SERVICE.UNAVAILABLE',
      `NATS did not store every event of the batch: ${describe(failed.reason)}`,
      { cause: failed.reason },
    );
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));
