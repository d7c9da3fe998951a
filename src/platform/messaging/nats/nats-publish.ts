import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { AppError } from '../../errors/app-error.ts';
import { partitionOf, type OutboxEvent } from '../broker.ts';
import type { NatsLayout } from './nats-layout.ts';

/** The most events one message carries, and about the most bytes (a single larger event goes alone). */
export interface MessageLimits {
  events: number;
  bytes: number;
}

export const DEFAULT_MESSAGE_LIMITS: MessageLimits = { events: 100, bytes: 256 * 1024 };

/** One JetStream message: its body and the id JetStream drops a second publish of. */
export interface EventsMessage {
  body: string;
  msgID: string;
  count: number;
}

/**
 * Packs one partition's consecutive events into messages, in order. A message of one event is the event's JSON
 * with the event id as its message id; a message of several is a JSON array, its message id a digest of their
 * ids, so a re-send of the same events is dropped and one of other events never is.
 * @example packEvents(events, { events: 100, bytes: 262_144 }) // [{ body: '[{...},{...}]', msgID: 'events-3f2a...', count: 2 }]
 */
export function packEvents(events: readonly OutboxEvent[], limits: MessageLimits): EventsMessage[] {
  const messages: EventsMessage[] = [];
  let parts: string[] = [];
  let ids: string[] = [];
  let bytes = 0;
  const flush = () => {
    if (parts.length === 0) return;
    messages.push(parts.length === 1
      ? { body: parts[0]!, msgID: ids[0]!, count: 1 }
      : { body: `[${parts.join(',')}]`, msgID: `events-${createHash('sha256').update(ids.join(',')).digest('hex')}`, count: parts.length });
    parts = [];
    ids = [];
    bytes = 0;
  };
  for (const event of events) {
    const json = JSON.stringify(event);
    if (parts.length > 0 && (parts.length >= limits.events || bytes + json.length > limits.bytes)) flush();
    parts.push(json);
    ids.push(event.id);
    bytes += json.length + 1;
  }
  flush();
  return messages;
}

/**
 * The events of a message: one event, or the array of several that packEvents made.
 * @example unpackEvents('[{"id":"a",...},{"id":"b",...}]') // two events
 */
export function unpackEvents(body: unknown): OutboxEvent[] {
  const events = Array.isArray(body) ? body : [body];
  if (events.length === 0 || !events.every((e) => typeof e === 'object' && e !== null && typeof (e as OutboxEvent).id === 'string')) {
    throw new TypeError('not an event or an array of events');
  }
  return events as OutboxEvent[];
}

/**
 * Publishes `events` to their partition subjects and resolves once JetStream has stored every one. A partition's
 * consecutive events travel together in messages (packEvents), so a consumer takes them in one delivery and one
 * acknowledgement. Partitions are published side by side, but within a partition each message waits for the
 * previous one's PubAck: pipelined publishes could, across a reconnect, store a later message and lose an earlier
 * one, and the re-send would then land out of order.
 * @example await publishInPartitionOrder(js, natsLayout('stratum'), 8, events);
 */
export async function publishInPartitionOrder(
  js: JetStreamClient, layout: NatsLayout, partitions: number, events: readonly OutboxEvent[], limits: MessageLimits = DEFAULT_MESSAGE_LIMITS,
): Promise<void> {
  const byPartition = new Map<number, OutboxEvent[]>();
  for (const event of events) {
    const partition = partitionOf(event.key, partitions);
    const list = byPartition.get(partition);
    if (list) list.push(event);
    else byPartition.set(partition, [event]);
  }
  // Every chain settles before this resolves or rejects, so nothing is still in flight when the caller retries.
  const results = await Promise.allSettled([...byPartition].map(async ([partition, list]) => {
    for (const message of packEvents(list, limits)) {
      await js.publish(layout.eventSubject(partition), message.body, { msgID: message.msgID });
    }
  }));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    throw new AppError('SERVICE.UNAVAILABLE', `NATS did not store every event of the batch: ${describe(failed.reason)}`, { cause: failed.reason });
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));
