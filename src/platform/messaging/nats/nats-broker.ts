import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Broker, Subscription } from '../broker.ts';
import { JSON_EVENTS, type EventCodec } from '../codec/event-codec.ts';
import { createNatsDeadLetters } from './nats-dead-letters.ts';
import { followStream } from './nats-follower.ts';
import { groupToken, natsLayout } from './nats-layout.ts';
import { createPacker, DEFAULT_MESSAGE_LIMITS, publishInPartitionOrder } from './nats-publish.ts';
import { subscribeGroup, type GroupSubscription } from './nats-subscription.ts';
import { ensureGroupConsumer, ensureStreams } from './nats-topology.ts';

export interface NatsBrokerOptions {
  servers: string | string[];
  /** Lower-case; names the streams (`<NAMESPACE>_EVENTS`, `<NAMESPACE>_DLQ`) and prefixes every subject. */
  namespace: string;
  partitions?: number;
  /**
   * What events are written in (default JSON, without schemas: what this adapter always wrote). Every message
   * says its encoding in a `content-type` header, and consumers and followers read every encoding whatever this is.
   */
  codec?: EventCodec;
  /** How long the server waits for an ack before delivering an event again; a running handler extends it. */
  ackWaitMs?: number;
  /** Delay before an event whose handling threw unexpectedly is delivered again. */
  retryDelayMs?: number;
  /** How long events stay in the events stream. */
  maxAgeMs?: number;
  /** The window in which a second publish of the same event id is dropped. */
  duplicateWindowMs?: number;
  /** The clock of dead letters' `deadAt`. */
  now?: () => Date;
  log?: (message: string, error?: unknown) => void;
}

const DAY_MS = 86_400_000;

/**
 * The NATS JetStream broker: a stream `<NAMESPACE>_EVENTS` with a subject per partition, a durable pull consumer
 * per group and partition (`<group>_p<i>`, one unacknowledged message at a time; a message carries a
 * partition's consecutive events of one publish, in the codec's encoding, named by its `content-type` header;
 * a message no codec can read goes to each group's dead letters), and dead letters in a stream
 * `<NAMESPACE>_DLQ` with a subject per group. Several instances of the app share the consumers and compete for
 * events; the connection reconnects for as long as it takes.
 * @example
 * const broker = await createNatsBroker({ servers: 'nats://127.0.0.1:4222', namespace: 'stratum' });
 * const sub = await broker.subscribe('billing', { handle: async ({ event }) => { await bill(event); return { kind: 'ack' }; } });
 * await broker.publish(events);
 * await sub.stop();
 * await broker.close();
 */
export async function createNatsBroker(options: NatsBrokerOptions): Promise<Broker> {
  const layout = natsLayout(options.namespace);
  const partitions = options.partitions ?? 8;
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partitions must be a positive integer, not ${partitions}`);
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const log = options.log ?? (() => {});
  const codec = options.codec ?? JSON_EVENTS;

  // No stack captured at the start of every request and publish (a tenth of the process's CPU under load);
  // our own log lines say what failed.
  const nc = await connect({
    servers: options.servers,
    name: `stratum-${layout.namespace}`,
    maxReconnectAttempts: -1,
    noAsyncTraces: true,
  });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await ensureStreams(jsm, layout, {
      maxAgeMs: options.maxAgeMs ?? 7 * DAY_MS,
      duplicateWindowMs: options.duplicateWindowMs ?? 120_000,
    });
    const deadLetters = createNatsDeadLetters({ js, jsm, layout, partitions, now: options.now ?? (() => new Date()) });
    const packer = createPacker(DEFAULT_MESSAGE_LIMITS, codec);
    const subscriptions = new Set<GroupSubscription>();
    const followers = new Set<Subscription>();

    return {
      name: 'nats',
      partitions,
      publish: (events) => publishInPartitionOrder(js, layout, partitions, events, packer),
      async subscribe(group, subscribeOptions) {
        groupToken(group); // fails on a name no consumer can have, before anything is created
        const infos = await Promise.all(
          Array.from({ length: partitions }, (_, p) => ensureGroupConsumer(jsm, layout, group, p, { ackWaitMs })),
        );
        const subscription = subscribeGroup(
          {
            group,
            codec,
            stream: layout.eventsStream,
            consumers: infos.map((info) => js.consumers.getConsumerFromInfo(info)),
            deadLetters,
            ackWaitMs,
            retryDelayMs,
            isConnectionClosed: () => nc.isClosed(),
            flush: () => nc.flush(),
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
        const follower = await followStream(
          { js, layout, codec, retryDelayMs, isConnectionClosed: () => nc.isClosed(), log },
          listener,
        );
        followers.add(follower);
        return {
          async stop() {
            followers.delete(follower);
            await follower.stop();
          },
        };
      },
      deadLetters: {
        list: (group, limit) => deadLetters.list(group, limit),
        get: (group, id) => deadLetters.get(group, id),
        replay: (group, id) => deadLetters.replay(group, id),
        drop: (group, id) => deadLetters.drop(group, id),
      },
      async close() {
        // Like a crash for what is in hand: nothing more is acknowledged, the server delivers it again after the ack wait.
        for (const subscription of subscriptions) subscription.abandon();
        subscriptions.clear();
        await Promise.all([...followers].map((f) => f.stop()));
        followers.clear();
        if (!nc.isClosed()) await nc.close();
      },
    };
  } catch (error) {
    await nc.close();
    throw error;
  }
}
