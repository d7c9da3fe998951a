import { Type, type Static, type TSchema } from 'typebox';
import { Check, Errors } from 'typebox/value';
import type { TxSql } from '../db/connect.ts';
import type { OutboxEvent } from '../messaging/broker.ts';
import { addToOutbox } from '../messaging/outbox.ts';

/**
 * An event a context publishes: its name on the wire and the schema of its payload. Publishing and handling go
 * through the same value, so a name is never a bare string and a payload always matches its type.
 * @example export const NoteCreated = defineEvent('note.created', Type.Object({ id: Type.Integer() }));
 */
export interface EventType<S extends TSchema = TSchema> {
  readonly name: string;
  readonly schema: S;
}

export type PayloadOf<E extends EventType> = Static<E['schema']>;

export function defineEvent<S extends TSchema>(name: string, schema: S): EventType<S> {
  if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/.test(name))
    throw new TypeError(`"${name}" is not an event name like "context.happened"`);
  return Object.freeze({ name, schema });
}

/**
 * Writes `event` into the outbox inside the caller's transaction (see addToOutbox): published if and only if
 * the transaction commits. A payload that does not match the event's schema is refused (a TypeError naming
 * the field), so no consumer ever gets one from stratum.
 * @example await publish(tx, NoteRenamed, id, { id, title });
 */
export function publish<E extends EventType>(
  tx: TxSql,
  event: E,
  key: string,
  payload: PayloadOf<E>,
  options: { notify?: boolean } = {},
): Promise<string> {
  // Checked at both ends (decision 0032): a payload off its schema fails the write here, naming the field.
  if (!Check(event.schema, payload)) return Promise.reject(schemaError(event, payload));
  return addToOutbox(tx, { type: event.name, key, payload }, options);
}

function schemaError(event: EventType, payload: unknown): TypeError {
  const first = [...Errors(event.schema, payload)][0];
  const where = first ? `${first.instancePath || '/'} ${first.message}` : 'does not match its schema';
  return new TypeError(`event ${event.name}: payload ${where}`);
}

/** The event's payload when `received` is an event of type `event`; undefined when it is another type. */
export function payloadIf<E extends EventType>(
  received: Pick<OutboxEvent, 'type' | 'payload'>,
  event: E,
): PayloadOf<E> | undefined {
  if (received.type !== event.name) return undefined;
  if (!Check(event.schema, received.payload)) throw schemaError(event, received.payload);
  return received.payload as PayloadOf<E>;
}

/** True when `received` is one of `events` (by name); its payload is not checked. */
export function isOneOf(received: Pick<OutboxEvent, 'type'>, events: readonly EventType[]): boolean {
  return events.some((e) => e.name === received.type);
}

export { Type };
