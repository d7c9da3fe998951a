import type { Message, Options } from 'amqplib';
import type { DeadLetter, OutboxEvent, Outcome } from '../broker.ts';
import { JSON_EVENTS, undecodableEvent, type EventCodec } from '../codec/event-codec.ts';

export interface Encoded {
  content: Buffer;
  options: Options.Publish;
}

/**
 * An event as an AMQP message: the whole OutboxEvent in the codec's encoding, which the content type names;
 * persistent, messageId = event id.
 */
export function encodeEvent(event: OutboxEvent, codec: EventCodec = JSON_EVENTS): Encoded {
  const createdAt = Date.parse(event.createdAt);
  const { body, contentType } = codec.encode(event);
  return {
    content: body,
    options: {
      persistent: true,
      contentType,
      messageId: event.id,
      type: event.type,
      appId: 'stratum',
      ...(Number.isFinite(createdAt) ? { timestamp: Math.floor(createdAt / 1000) } : {}),
    },
  };
}

/**
 * The event a message carries, in whichever encoding its content type names; throws EventDecodeError saying why
 * when the body is not one (an unknown content type, a corrupt body, a message stratum did not publish).
 */
export function decodeEvent(message: Message, codec: EventCodec = JSON_EVENTS): OutboxEvent {
  return codec.decode(message.content, message.properties.contentType as string | undefined);
}

/** What a dead letter keeps of a message that is no readable event: its body and content type. */
export function undecodableOf(message: Message): OutboxEvent {
  const messageId = typeof message.properties.messageId === 'string' ? message.properties.messageId : '';
  return undecodableEvent(
    messageId || `delivery-${message.fields.deliveryTag}`,
    message.content,
    message.properties.contentType as string | undefined,
  );
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

/** A dead letter: the event as JSON (dead letters are read by people) plus headers saying why, when and where from. */
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
export function decodeDeadLetter(group: string, message: Message, codec: EventCodec = JSON_EVENTS): StoredDeadLetter {
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  const death = (Array.isArray(headers['x-death']) ? headers['x-death'][0] : undefined) as XDeath | undefined;
  let event: OutboxEvent;
  try {
    event = decodeEvent(message, codec);
  } catch {
    event = undecodableOf(message);
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
