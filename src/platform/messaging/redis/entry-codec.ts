import type { DeadLetter, OutboxEvent } from '../broker.ts';
import {
  CONTENT_TYPES,
  EventDecodeError,
  JSON_EVENTS,
  undecodableEvent,
  type EventCodec,
} from '../codec/event-codec.ts';

/** A stream entry's fields as the string-reading client returns them (dead letters: always JSON text). */
export type EntryFields = Record<string, string>;

/**
 * An event entry's fields as the adapter reads them (stream-entries.ts): values as bytes, so that binary
 * bodies (msgpack, protobuf) arrive as written.
 */
export type RawEntryFields = Record<string, Buffer>;

/** What an event's entry is written as: text for `event` and `ct`, bytes for `body`. */
type EventEntryFields = { event: string } | { ct: string; body: Buffer };

/**
 * The fields of an event's stream entry, one event per entry. JSON keeps the fields the adapter always wrote,
 * `{ event: <JSON> }`, so streams written before encodings stay readable (and readable by older instances);
 * any other encoding is `{ ct: <content type>, body: <bytes> }`, the body stored binary, as it is.
 * @example await client.xAdd(keys.events(p), '*', eventFields(codec, event));
 */
export function eventFields(codec: EventCodec, event: OutboxEvent): EventEntryFields {
  const { body, contentType } = codec.encode(event);
  return contentType === CONTENT_TYPES.json ? { event: body.toString('utf8') } : { ct: contentType, body };
}

const bytes = (value: Buffer | string): Buffer => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
const text = (value: Buffer | string | undefined): string | undefined =>
  value === undefined ? undefined : typeof value === 'string' ? value : value.toString('utf8');

/**
 * The event of a stream entry, decoded by the entry's own content type (an `event` field is JSON), whatever
 * `codec` writes; throws EventDecodeError, saying why, for an entry no codec can read.
 * @example const event = eventFromFields(codec, entry.fields);
 */
export function eventFromFields(codec: EventCodec, fields: Readonly<Record<string, Buffer | string>>): OutboxEvent {
  if (fields.event !== undefined) return codec.decode(bytes(fields.event), CONTENT_TYPES.json);
  if (fields.body !== undefined) return codec.decode(bytes(fields.body), text(fields.ct));
  const names = Object.keys(fields);
  throw new EventDecodeError(
    `stream entry without an event or a body field (${names.length > 0 ? `fields: ${names.join(', ')}` : 'no fields'})`,
  );
}

/**
 * The placeholder a dead letter keeps of an entry eventFromFields could not read: its body bytes and content
 * type (see undecodableEvent), under the entry's id.
 * @example tx.xAdd(keys.deadLetters(group), '*', deadLetterFields(undecodableFromFields(entry.id, entry.fields), error.message, 0, now));
 */
export function undecodableFromFields(id: string, fields: Readonly<Record<string, Buffer | string>>): OutboxEvent {
  if (fields.event !== undefined) return undecodableEvent(id, bytes(fields.event), CONTENT_TYPES.json);
  return undecodableEvent(id, fields.body === undefined ? Buffer.alloc(0) : bytes(fields.body), text(fields.ct));
}

/**
 * The fields of a dead letter's entry in the group's dead-letter stream. The event is JSON whatever it was
 * published as (what REPLAY_DEAD_LETTER copies to the replay stream, and what every reader reads).
 * @example await client.xAdd(keys.deadLetters(group), '*', deadLetterFields(event, 'boom', 5, new Date()));
 */
export function deadLetterFields(event: OutboxEvent, error: string, attempts: number, deadAt: Date): EntryFields {
  return { event: JSON.stringify(event), error, attempts: String(attempts), deadAt: deadAt.toISOString() };
}

/**
 * A dead letter from its stream entry (its id is the entry id).
 * @example deadLetterFromEntry('billing', entry.id, entry.message)
 */
export function deadLetterFromEntry(group: string, id: string, fields: EntryFields): DeadLetter {
  return {
    id,
    group,
    event: eventFromFields(JSON_EVENTS, fields),
    error: fields.error ?? '',
    attempts: Number(fields.attempts ?? 0),
    deadAt: fields.deadAt ?? new Date(Number(id.split('-')[0])).toISOString(),
  };
}
