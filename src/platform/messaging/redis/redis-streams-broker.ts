import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { partitionOf, type Broker, type Subscription } from '../broker.ts';
import { JSON_EVENTS, type EventCodec } from '../codec/event-codec.ts';
import { createDeadLetterStore } from './dead-letter-store.ts';
import { eventFields } from './entry-codec.ts';
import { subscribeToGroup, type GroupSubscription } from './group-subscription.ts';
import { redisStreamsKeys } from './keys.ts';
import { connectClient, destroyClient, type Log, type RedisStreamsClient } from './redis-client.ts';
import { followStreams } from './stream-follower.ts';

export interface RedisStreamsBrokerOptions {
  url: string;
  /** Prefix of every key; instances of one app share it, anything else sharing the Redis uses another. */
  namespace: string;
  /** Streams per namespace; every instance must use the same number (it decides where a key's events go). */
  partitions?: number;
  /**
   * What this instance writes events as (decision 0032). Default JSON_EVENTS, whose entries `{ event: <JSON> }`
   * are what the adapter always wrote; other encodings write `{ ct: <content type>, body: <bytes> }`. Every
   * instance reads every encoding, by each entry's content type, so instances may differ while they change over.
   */
  codec?: EventCodec;
  /** How long a partition's lease lasts unrenewed: a dead consumer's partitions move after it. Default 10 s. */
  leaseMs?: number;
  /** How long an entry stays pending before the partition's next holder takes it over. Default leaseMs. */
  claimIdleMs?: number;
  /** Entries read at once per partition. Default 100. */
  batchSize?: number;
  log?: Log;
  /** When a letter died (its deadAt). Default: the system clock. */
  now?: () => Date;
  /** Names each subscription's consumer in its group. Default: a random UUID. */
  newConsumerId?: () => string;
}

/**
 * The Redis Streams broker: one stream per partition (`<namespace>:events:p<i>`), a consumer group per
 * subscribing group, and a lease per group and partition (`<namespace>:lease:<group>:p<i>`) so that one
 * consumer at a time serves a partition, in order. A holder first takes over what is pending (its own entries,
 * then others' idle longer than claimIdleMs, by XAUTOCLAIM), then reads new entries. Dead letters are a stream
 * per group (`<namespace>:dlq:<group>`), their events always JSON; an entry that cannot be decoded goes there too,
 * as its placeholder (undecodableEvent), with the reason.
 *
 * `publish` resolves once Redis answered the MULTI of its XADDs: as durable as the server's AOF (`appendfsync`)
 * and replication settings make it, nothing more. Streams are not trimmed.
 * The adapter opens its own connections: one for commands, one for rebalance notices once something
 * subscribes, and one per partition served (blocking reads). `close()` drops them all without acknowledging
 * what is in hand, like a process that dies; call `stop()` on subscriptions first for a graceful shutdown.
 * @example
 * const broker = await createRedisStreamsBroker({ url: 'redis://127.0.0.1:6379', namespace: 'stratum', log: (m, e) => logger.warn({ err: e }, m) });
 * await broker.publish(events);
 * const subscription = await broker.subscribe('scores', { handle: async ({ event }) => ({ kind: 'ack' }) });
 */
export async function createRedisStreamsBroker(options: RedisStreamsBrokerOptions): Promise<Broker> {
  const partitions = options.partitions ?? 8;
  const leaseMs = options.leaseMs ?? 10_000;
  const claimIdleMs = options.claimIdleMs ?? leaseMs;
  const log = options.log ?? (() => {});
  const now = options.now ?? (() => new Date());
  const newConsumerId = options.newConsumerId ?? randomUUID;
  const codec = options.codec ?? JSON_EVENTS;
  const keys = redisStreamsKeys(options.namespace);
  const client = await connectClient(createClient({ url: options.url }), log, 'command');
  const subscriptions = new Set<GroupSubscription>();
  const followers = new Set<Subscription>();
  let listener: Promise<RedisStreamsClient> | undefined;
  let closed = false;

  async function listen(channel: string, onMessage: (message: string) => void): Promise<() => Promise<unknown>> {
    listener ??= connectClient(client.duplicate(), log, 'rebalance listener');
    const connection = await listener;
    await connection.subscribe(channel, onMessage);
    return () => connection.unsubscribe(channel, onMessage);
  }

  return {
    name: 'redis',
    partitions,

    async publish(events) {
      if (events.length === 0) return;
      const tx = client.multi();
      for (const event of events)
        tx.xAdd(keys.events(partitionOf(event.key, partitions)), '*', eventFields(codec, event));
      await tx.exec();
    },

    async subscribe(group, subscribeOptions) {
      if (closed) throw new Error('redis streams broker: closed');
      const subscription = await subscribeToGroup(
        {
          client,
          listen,
          keys,
          group,
          consumer: newConsumerId(),
          partitions,
          codec,
          leaseMs,
          claimIdleMs,
          batchSize: options.batchSize ?? 100,
          blockMs: 1000,
          retryDelayMs: Math.min(1000, claimIdleMs),
          now,
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
      if (closed) throw new Error('redis streams broker: closed');
      const connection = await connectClient(client.duplicate(), log, 'follower');
      let follower: Subscription;
      try {
        follower = await followStreams(
          {
            connection,
            streams: Array.from({ length: partitions }, (_, p) => keys.events(p)),
            codec,
            batchSize: options.batchSize ?? 100,
            blockMs: 1000,
            retryDelayMs: Math.min(1000, claimIdleMs),
            log,
          },
          listener,
        );
      } catch (error) {
        destroyClient(connection);
        throw error;
      }
      followers.add(follower);
      return {
        async stop() {
          followers.delete(follower);
          await follower.stop();
        },
      };
    },

    deadLetters: createDeadLetterStore(client, keys, partitions),

    async close() {
      if (closed) return;
      closed = true;
      for (const subscription of subscriptions) subscription.abandon();
      subscriptions.clear();
      await Promise.all([...followers].map((f) => f.stop()));
      followers.clear();
      destroyClient(client);
      await listener?.then(destroyClient, () => {});
    },
  };
}
