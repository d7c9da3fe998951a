import type { Message, Options } from 'amqplib';
import type { DeadLetter, OutboxEvent, Outcome } from '../broker.ts';

export interface Encoded {
  content: Buffer;
  options: Options.Publish;
}

/** An event as an AMQP message: the whole OutboxEvent as JSON, persistent, messageId = event id. */
export function encodeEvent(event: OutboxEvent): Encoded {
  const createdAt = Date.parse(event.createdAt);
  return {
    content: Buffer.from(JSON.stringify(event)),
    options: {
      persistent: true,
      contentType: 'application/json',
      messageId: event.id,
      type: event.type,
      appId: 'stratum',
      ...(Number.isFinite(createdAt) ? { timestamp: Math.floor(createdAt / 1000) } : {}),
    },
  };
}

/** The event a message carries; throws when the body is not one (a message stratum did not publish). */
export function decodeEvent(message: Message): OutboxEvent {
  const value = JSON.parse(message.content.toString('utf8')) as Partial<OutboxEvent> | null;
  if (!value || typeof value.id !== 'string' || typeof value.type !== 'string' || typeof value.key !== 'string') {
    throw new Error(`message ${String(message.properties.messageId)} is not an outbox event`);
  }
  return {
    id: value.id,
    type: value.type,
    key: value.key,
    payload: value.payload,
    headers: value.headers ?? {},
    createdAt: value.createdAt ?? '',
  };
}

const H = {
  id: 'x-stratum-dead-letter-id',
  error: 'x-stratum-error',
  attempts: 'x-stratum-attempts',
  deadAt: 'x-stratum-dead-at',
  partition: 'x-stratum-partition',
} as const;

/** AMQP header tables are limited to 64 KiB (amqplib throws past it): keep an error's first lines only. */
const MAX_ERROR_CHARS = 4000;

export interface DeadLetterFacts {
  id: string;
  partition: number;
  deadAt: Date;
  outcome: Extract<Outcome, { kind: 'dead-letter' }>;
}

/** A dead letter: the event's own message plus headers saying why, when and from which partition. */
export function encodeDeadLetter(event: OutboxEvent, facts: DeadLetterFacts): Encoded {
  const { content, options } = encodeEvent(event);
  return {
    content,
    options: {
      ...options,
      headers: {
        [H.id]: facts.id,
        [H.error]: facts.outcome.error.slice(0, MAX_ERROR_CHARS),
        [H.attempts]: facts.outcome.attempts,
        [H.deadAt]: facts.deadAt.toISOString(),
        [H.partition]: facts.partition,
      },
    },
  };
}

export interface StoredDeadLetter extends DeadLetter {
  /** The partition it died in, when known (messages dead-lettered by RabbitMQ itself do not say). */
  partition: number | undefined;
}

/** amqplib decodes an AMQP timestamp as `{ '!': 'timestamp', value: seconds }`. */
interface XDeath {
  reason?: string;
  count?: number;
  time?: { value?: number };
}

/**
 * Reads a message of a group's dead-letter queue. Messages RabbitMQ dead-lettered itself (a body that was not
 * an event, rejected by the consumer) carry no stratum headers: their reason comes from `x-death`, their id is
 * the message id, and an unreadable body becomes the payload of an `undecodable` event.
 */
export function decodeDeadLetter(group: string, message: Message): StoredDeadLetter {
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  const death = (Array.isArray(headers['x-death']) ? headers['x-death'][0] : undefined) as XDeath | undefined;
  let event: OutboxEvent;
  try {
    event = decodeEvent(message);
  } catch {
    const messageId = typeof message.properties.messageId === 'string' ? message.properties.messageId : '';
    event = {
      id: messageId,
      type: 'undecodable',
      key: '',
      payload: message.content.toString('utf8'),
      headers: {},
      createdAt: '',
    };
  }
  const deathSeconds = death?.time?.value;
  return {
    id: stringHeader(headers[H.id]) ?? event.id,
    group,
    event,
    error: stringHeader(headers[H.error]) ?? `dead-lettered by RabbitMQ (${death?.reason ?? 'unknown reason'})`,
    attempts: numberHeader(headers[H.attempts]) ?? death?.count ?? 0,
    deadAt:
      stringHeader(headers[H.deadAt]) ??
      (deathSeconds === undefined ? '' : new Date(deathSeconds * 1000).toISOString()),
    partition: numberHeader(headers[H.partition]),
  };
}

const stringHeader = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
const numberHeader = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
