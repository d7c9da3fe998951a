import type { DeadLetter, OutboxEvent } from '../broker.ts';

/** A stream entry's fields as node-redis returns them. */
export type EntryFields = Record<string, string>;

/**
 * The fields of an event's stream entry: the whole event as JSON in one field, so an entry is one event.
 * @example await client.xAdd(keys.events(p), '*', eventFields(event));
 */
export function eventFields(event: OutboxEvent): EntryFields {
  return { event: JSON.stringify(event) };
}

/**
 * The event of a stream entry; throws on an entry this adapter did not write.
 * @example const event = eventFromFields(entry.message);
 */
export function eventFromFields(fields: EntryFields): OutboxEvent {
  const text = fields.event;
  if (text === undefined) throw new Error('stream entry without an event field');
  const event = JSON.parse(text) as Partial<OutboxEvent> | null;
  if (typeof event?.id !== 'string' || typeof event.type !== 'string' || typeof event.key !== 'string') {
    throw new Error('stream entry whose event lacks an id, a type or a key');
  }
  return event as OutboxEvent;
}

/**
 * The fields of a dead letter's entry in the group's dead-letter stream.
 * @example await client.xAdd(keys.deadLetters(group), '*', deadLetterFields(event, 'boom', 5, new Date()));
 */
export function deadLetterFields(event: OutboxEvent, error: string, attempts: number, deadAt: Date): EntryFields {
  return { ...eventFields(event), error, attempts: String(attempts), deadAt: deadAt.toISOString() };
}

/**
 * A dead letter from its stream entry (its id is the entry id).
 * @example deadLetterFromEntry('billing', entry.id, entry.message)
 */
export function deadLetterFromEntry(group: string, id: string, fields: EntryFields): DeadLetter {
  return {
    id,
    group,
    event: eventFromFields(fields),
    error: fields.error ?? '',
    attempts: Number(fields.attempts ?? 0),
    deadAt: fields.deadAt ?? new Date(Number(id.split('-')[0])).toISOString(),
  };
}
