import type { JetStreamClient } from '@nats-io/jetstream';
import { AppError } from '../../errors/app-error.ts';
import { partitionOf, type OutboxEvent } from '../broker.ts';
import type { NatsLayout } from './nats-layout.ts';

/**
 * Publishes `events` to their partition subjects and resolves once JetStream has stored every one. Partitions are
 * published side by side, but within a partition each event waits for the previous one's PubAck: pipelined
 * publishes could, across a reconnect, store a later event and lose an earlier one, and the re-send would then
 * land out of order. The event id is the JetStream message id, so a re-send within the duplicate window is dropped.
 * @example await publishInPartitionOrder(js, natsLayout('stratum'), 8, events);
 */
export async function publishInPartitionOrder(
  js: JetStreamClient, layout: NatsLayout, partitions: number, events: readonly OutboxEvent[],
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
    for (const event of list) {
      await js.publish(layout.eventSubject(partition), JSON.stringify(event), { msgID: event.id });
    }
  }));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    throw new AppError('SERVICE.UNAVAILABLE', `NATS did not store every event of the batch: ${describe(failed.reason)}`, { cause: failed.reason });
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));
