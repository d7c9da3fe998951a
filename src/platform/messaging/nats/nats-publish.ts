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
  /** The ids of the events it carries, in order. */
  ids: string[];
}

/**
 * Packs one partition's consecutive events into messages, in order. A message of one event is the event's JSON
 * with the event id as its message id; a message of several is a JSON array, its message id a digest of their
 * ids, so a re-send of the same events together is dropped and one of other events never is. `again`: the
 * groups of an earlier publish of these events that may have been stored (its call failed); as long as the events
 * start with the same groups they are packed the same, so JetStream drops what it already has.
 * @example packEvents(events, { events: 100, bytes: 262_144 }) // [{ body: '[{...},{...}]', msgID: 'events-3f2a...', ids: [...] }]
 */
export function packEvents(
  events: readonly OutboxEvent[],
  limits: MessageLimits,
  again: ReadonlyArray<readonly string[]> = [],
): EventsMessage[] {
  const messages: EventsMessage[] = [];
  const jsonOf = (event: OutboxEvent) => JSON.stringify(event);
  const message = (parts: string[], ids: string[]): EventsMessage =>
    parts.length === 1
      ? { body: parts[0]!, msgID: ids[0]!, ids }
      : {
          body: `[${parts.join(',')}]`,
          msgID: `events-${createHash('sha256').update(ids.join(',')).digest('hex')}`,
          ids,
        };
  let i = 0;
  for (const group of again) {
    if (i + group.length > events.length || !group.every((id, k) => events[i + k]!.id === id)) break;
    const taken = events.slice(i, i + group.length);
    messages.push(message(taken.map(jsonOf), [...group]));
    i += group.length;
  }
  let parts: string[] = [];
  let ids: string[] = [];
  let bytes = 0;
  for (const event of events.slice(i)) {
    const json = jsonOf(event);
    const size = Buffer.byteLength(json) + 1;
    if (parts.length > 0 && (parts.length >= limits.events || bytes + size > limits.bytes)) {
      messages.push(message(parts, ids));
      parts = [];
      ids = [];
      bytes = 0;
    }
    parts.push(json);
    ids.push(event.id);
    bytes += size;
  }
  if (parts.length > 0) messages.push(message(parts, ids));
  return messages;
}

/**
 * Packs each partition's events for one publish call, remembering the packing of a call that failed: the relay
 * sends those events again (with more behind them, perhaps), and the same groups give the same message ids.
 * @example const packer = createPacker(DEFAULT_MESSAGE_LIMITS); const messages = packer.pack(3, events); packer.failed(3, messages);
 */
export function createPacker(limits: MessageLimits) {
  const unsettled = new Map<number, string[][]>();
  return {
    pack: (partition: number, events: readonly OutboxEvent[]) => packEvents(events, limits, unsettled.get(partition)),
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
 * The events of a message: one event, or the array of several that packEvents made.
 * @example unpackEvents('[{"id":"a",...},{"id":"b",...}]') // two events
 */
export function unpackEvents(body: unknown): OutboxEvent[] {
  const events = Array.isArray(body) ? body : [body];
  if (
    events.length === 0 ||
    !events.every((e) => typeof e === 'object' && e !== null && typeof (e as OutboxEvent).id === 'string')
  ) {
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
        await js.publish(layout.eventSubject(partition), message.body, { msgID: message.msgID });
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
