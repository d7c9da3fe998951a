import { AppError } from '../../errors/app-error.ts';
import type { SubscribeOptions, Subscription } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { errorMessage } from './amqp-error.ts';
import type { AmqpConnection } from './connection.ts';
import { joinGroup, type Membership } from './membership.ts';
import type { RabbitNames } from './names.ts';
import { claimPartition, type PartitionConsumer } from './partition-consumer.ts';
import { claimCandidates, partitionsToRelease, shareOf } from './share.ts';

export interface GroupSubscriptionOptions {
  connection: AmqpConnection;
  names: RabbitNames;
  group: string;
  partitions: number;
  prefetch: number;
  /** How often the member re-counts the group and takes partitions nobody holds (a dead member's). */
  rebalanceMs: number;
  redeliverDelayMs: number;
  now: () => Date;
  newId: () => string;
  codec: EventCodec;
  log: (message: string, error?: unknown) => void;
}

export interface GroupSubscription extends Subscription {
  /** Stops at once without finishing or acknowledging the events in hand (the connection is being closed). */
  abandon(): void;
}

/**
 * One member of a consumer group. It holds its share of the group's partitions (ceil(partitions / members),
 * capped by `maxPartitions`), each with an exclusive consumer, so a partition has one consumer at a time.
 * A rebalance runs at start, on a nudge from another member, every `rebalanceMs`, after a reconnection and when
 * a partition is lost: a member above its share lets its highest partitions go (finishing the event in hand
 * first) and nudges the others; a member below its share claims partitions whose queue has no consumer.
 * @example const sub = await subscribeGroup({ connection, names, group: 'scores', partitions: 8, prefetch: 1, rebalanceMs: 1000, redeliverDelayMs: 1000, now, newId, log }, { handle });
 */
export async function subscribeGroup(
  o: GroupSubscriptionOptions,
  options: SubscribeOptions,
): Promise<GroupSubscription> {
  const memberId = o.newId();
  let state: 'running' | 'stopping' | 'abandoned' = 'running';
  let membership: Membership | undefined;
  let joinedNow = false;
  const held = new Map<number, PartitionConsumer>();
  /** Partitions given up or lost whose handler may still run, by partition. */
  const leaving = new Map<number, PartitionConsumer>();
  let rebalancing: Promise<void> | undefined;
  let again = false;
  let stopping: Promise<void> | undefined;

  /** A function, so TypeScript does not narrow `state` across the awaits of a rebalance. */
  const isAbandoned = () => state === 'abandoned';

  function requestRebalance(): Promise<void> {
    if (state !== 'running') return Promise.resolve();
    if (rebalancing) {
      again = true;
      return rebalancing;
    }
    rebalancing = (async () => {
      try {
        do {
          again = false;
          try {
            await rebalanceOnce();
          } catch (error) {
            if (state === 'running')
              o.log(`rabbitmq group ${o.group}: rebalance failed: ${errorMessage(error)}`, error);
          }
        } while (again && state === 'running');
      } finally {
        rebalancing = undefined;
      }
    })();
    return rebalancing;
  }

  async function join(): Promise<Membership> {
    const model = o.connection.current();
    if (!model) throw new AppError('SERVICE.UNAVAILABLE', 'rabbitmq is not connected');
    if (membership?.alive() && membership.model === model) return membership;
    membership = await joinGroup({
      model,
      names: o.names,
      group: o.group,
      partitions: o.partitions,
      memberId,
      log: o.log,
      onNudge: () => void requestRebalance(),
    });
    joinedNow = true;
    return membership;
  }

  async function rebalanceOnce(): Promise<void> {
    if (!o.connection.current()) return; // the reconnection triggers the next one
    const m = await join();
    const share = shareOf(o.partitions, await m.members(), options.maxPartitions);
    const extra = partitionsToRelease([...held.keys()], share);
    if (extra.length > 0) {
      void Promise.all(extra.map((p) => letGo(held.get(p)!).release())).then(() => m.nudge());
    } else {
      for (const p of claimCandidates(o.partitions, held.keys(), leaving.keys())) {
        if (held.size >= share || state !== 'running') break;
        const queue = o.names.partitionQueue(o.group, p);
        if (!(await m.isFree(queue))) continue;
        const consumer = await claimPartition({
          model: m.model,
          partition: p,
          queue,
          deadLetterQueue: o.names.deadLetterQueue(o.group),
          prefetch: o.prefetch,
          redeliverDelayMs: o.redeliverDelayMs,
          handle: options.handle,
          handleBatch: options.handleBatch,
          now: o.now,
          newId: o.newId,
          codec: o.codec,
          log: o.log,
          onLost: letGo,
        });
        if (!consumer) continue; // another member was quicker
        held.set(p, consumer);
        if (isAbandoned()) consumer.abandon(); // close() ran while the claim was under way
      }
    }
    if (joinedNow) {
      joinedNow = false;
      m.nudge();
    }
  }

  /** Moves a consumer from held to leaving until its channel is closed and its handler done. */
  function letGo(consumer: PartitionConsumer): PartitionConsumer {
    const p = consumer.partition;
    if (held.get(p) === consumer) held.delete(p);
    leaving.set(p, consumer);
    void consumer.settled.then(() => {
      if (leaving.get(p) === consumer) leaving.delete(p);
      void requestRebalance();
    });
    return consumer;
  }

  if (!o.connection.current()) throw new AppError('SERVICE.UNAVAILABLE', 'rabbitmq is not connected');
  await join();
  await requestRebalance();
  const timer = setInterval(() => void requestRebalance(), o.rebalanceMs);
  timer.unref();
  const stopReconnecting = o.connection.onReconnect(() => void requestRebalance());

  return {
    stop() {
      if (state === 'abandoned') return Promise.resolve();
      stopping ??= (async () => {
        state = 'stopping';
        clearInterval(timer);
        stopReconnecting();
        await rebalancing;
        await Promise.all([...held.values()].map((c) => letGo(c).release()));
        await Promise.all([...leaving.values()].map((c) => c.settled));
        membership?.nudge(); // the others take the partitions now rather than at their next tick
        await membership?.leave();
      })();
      return stopping;
    },
    abandon() {
      state = 'abandoned';
      clearInterval(timer);
      stopReconnecting();
      for (const c of [...held.values(), ...leaving.values()]) c.abandon();
    },
  };
}
