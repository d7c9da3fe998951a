import { randomUUID } from 'node:crypto';
import type { Broker, Subscription } from '../broker.ts';
import { JSON_EVENTS, type EventCodec } from '../codec/event-codec.ts';
import { errorMessage } from './amqp-error.ts';
import { openAmqpConnection } from './connection.ts';
import { createDeadLetterStore } from './dead-letters.ts';
import { followExchange } from './follower.ts';
import { subscribeGroup, type GroupSubscription } from './group-subscription.ts';
import { rabbitNames } from './names.ts';
import { createPublisher } from './publisher.ts';
import { declareGroup, declareNamespace } from './topology.ts';

export interface RabbitMqBrokerOptions {
  /** amqp://user:password@host:5672/vhost (add `?heartbeat=10` to notice a dead peer sooner). */
  url: string;
  /** Prefix of every exchange and queue: `<namespace>.events`, `<namespace>.<group>.p<i>`, ... */
  namespace: string;
  partitions?: number;
  /**
   * Deliveries RabbitMQ sends ahead per partition (default 100). They are handled in order: one at a time, or
   * those in hand together when the runner takes batches (handleBatch).
   */
  prefetch?: number;
  /**
   * Groups whose queues are declared now. A direct exchange keeps an event only for the queues bound when it
   * arrives: list the groups here so events published before a group's first subscription wait for it.
   */
  groups?: readonly string[];
  /** How often a consumer re-counts its group and takes partitions nobody holds (default 1000 ms). */
  rebalanceMs?: number;
  /** Wait before a delivery whose handler threw goes back to the queue (default 1000 ms). */
  redeliverDelayMs?: number;
  /** Retries of the first connection before giving up (default 2); a connection lost later is retried forever. */
  connectRetries?: number;
  /** Longest wait between reconnection attempts (default 5000 ms). */
  maxReconnectDelayMs?: number;
  /** How events are written (each message's content type says how it was; every encoding is read). Default JSON. */
  codec?: EventCodec;
  now?: () => Date;
  newId?: () => string;
  log?: (message: string, error?: unknown) => void;
}

/**
 * The RabbitMQ broker: a durable direct exchange `<namespace>.events` routing each event to its partition
 * (`p<i>`), durable queues `<namespace>.<group>.p<i>` per group, publisher confirms, exclusive consumers for
 * one-at-a-time partitions shared fairly among a group's members, and dead letters in `<namespace>.<group>.dlq`.
 * The connection reconnects by itself; publishing fails fast while it is down, subscriptions resume after it.
 * See decision 0014.
 * @example
 * const broker = await createRabbitMqBroker({ url: 'amqp://guest:guest@127.0.0.1:5672', namespace: 'stratum' });
 * const sub = await broker.subscribe('scores', { handle: async (d) => { await apply(d.event); return { kind: 'ack' }; } });
 * await broker.publish(events); // resolves once RabbitMQ confirmed them all
 * await sub.stop(); await broker.close();
 */
export async function createRabbitMqBroker(options: RabbitMqBrokerOptions): Promise<Broker> {
  const names = rabbitNames(options.namespace);
  const partitions = options.partitions ?? 8;
  const log = options.log ?? (() => {});
  const now = options.now ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  const codec = options.codec ?? JSON_EVENTS;
  const connection = await openAmqpConnection({
    url: options.url,
    name: `stratum ${options.namespace}`,
    connectRetries: options.connectRetries ?? 2,
    maxReconnectDelayMs: options.maxReconnectDelayMs ?? 5000,
    log,
  });
  try {
    const ch = await connection.current()!.createChannel();
    ch.on('error', (error: Error) => log(`rabbitmq: ${errorMessage(error)}`, error));
    await declareNamespace(ch, names);
    for (const group of options.groups ?? []) await declareGroup(ch, names, group, partitions);
    await ch.close();
  } catch (error) {
    await connection.close().catch(() => {});
    throw error;
  }
  const publisher = createPublisher({ connection, names, partitions, codec, log });
  const subscriptions = new Set<GroupSubscription>();
  const followers = new Set<Subscription>();

  return {
    name: 'rabbitmq',
    partitions,
    publish: (events) => publisher.publish(events),
    async subscribe(group, subscribeOptions) {
      const subscription = await subscribeGroup(
        {
          connection,
          names,
          group,
          partitions,
          prefetch: options.prefetch ?? 100,
          rebalanceMs: options.rebalanceMs ?? 1000,
          redeliverDelayMs: options.redeliverDelayMs ?? 1000,
          now,
          newId,
          codec,
          log,
        },
        subscribeOptions,
      );
      subscriptions.add(subscription);
      return {
        async stop() {
          await subscription.stop();
          subscriptions.delete(subscription);
        },
      };
    },
    async follow(listener) {
      const follower = await followExchange({ connection, names, partitions, codec, log }, listener);
      followers.add(follower);
      return {
        async stop() {
          followers.delete(follower);
          await follower.stop();
        },
      };
    },
    deadLetters: createDeadLetterStore({ connection, names, partitions, codec }),
    async close() {
      for (const subscription of subscriptions) subscription.abandon();
      subscriptions.clear();
      await Promise.all([...followers].map((f) => f.stop()));
      followers.clear();
      await publisher.close();
      await connection.close();
    },
  };
}
