import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { ConsumerSpec } from '../platform/context/context-module.ts';
import { isOneOf, type EventType } from '../platform/context/events.ts';
import { createPool, type ConnectTarget, type Sql } from '../platform/db/connect.ts';
import type { Broker, Subscription } from '../platform/messaging/broker.ts';
import { createEventCodec, payloadMismatch, type EventCodec } from '../platform/messaging/codec/event-codec.ts';
import { consume } from '../platform/messaging/consumer.ts';
import { createPostgresBroker } from '../platform/messaging/postgres/postgres-broker.ts';
import { createRelay, type Relay } from '../platform/messaging/relay.ts';
import { CONTEXTS } from './contexts.ts';

/** Every event type the contexts declare: what the codec derives its Protobuf messages from. */
export function declaredEvents(): readonly EventType[] {
  return CONTEXTS.flatMap((c) => [...c.events]);
}

/** The codec of EVENT_ENCODING over every declared event type (decision 0032). */
export function eventCodec(config: Pick<Config, 'eventEncoding'>): EventCodec {
  return createEventCodec({ encoding: config.eventEncoding, events: declaredEvents() });
}

/**
 * Opens the configured broker: the PostgreSQL log by default, or RabbitMQ, NATS JetStream, Redis Streams, which
 * get events in EVENT_ENCODING (the PostgreSQL log keeps JSON, like the outbox).
 * `groups`: the consumer groups this deployment runs, declared up front where the broker needs it.
 */
export async function openBroker(
  config: Config,
  admin: Sql,
  logger: Logger,
  groups: readonly string[] = [],
): Promise<Broker> {
  const log = (message: string, error?: unknown) => logger.warn({ err: error }, message);
  const codec = eventCodec(config);
  switch (config.broker) {
    case 'postgres':
      return createPostgresBroker({ sql: admin, log });
    case 'rabbitmq': {
      const { createRabbitMqBroker } = await import('../platform/messaging/rabbitmq/index.ts');
      // Groups declared up front: a direct exchange drops events published before their group's queues exist.
      return createRabbitMqBroker({ url: config.brokerUrl!, namespace: 'stratum', groups: [...groups], codec, log });
    }
    case 'nats': {
      const { createNatsBroker } = await import('../platform/messaging/nats/index.ts');
      return createNatsBroker({ servers: config.brokerUrl!, namespace: 'stratum', codec, log });
    }
    case 'redis': {
      const { createRedisStreamsBroker } = await import('../platform/messaging/redis/index.ts');
      return createRedisStreamsBroker({ url: config.brokerUrl!, namespace: 'stratum', codec, log });
    }
  }
}

/**
 * A relay's own connections: one for its batch transaction, one for its wake gate's session locks (held for
 * as long as it is awake). Outside the request pools, so a saturated pool neither starves the relay nor is
 * starved by it.
 * @example const pool = openRelayPool(shard.target, 'stratum', 'shard-0-relay');
 */
export function openRelayPool(target: ConnectTarget, applicationName: string, name: string): Sql {
  return createPool(target, {
    max: 2,
    applicationName: `${applicationName}-relay`,
    name,
    connectTimeoutSeconds: 5,
    acquireWaitMs: 10_000,
  });
}

/** An outbox to relay: the database's address (for the relay's own pool) and the pool its writers use. */
export interface RelayedOutbox {
  name: string;
  target: ConnectTarget;
  writers: Sql;
}

/** The background side of a worker process: one relay per outbox and the contexts' consumers. */
export interface Workers {
  stop(): Promise<void>;
}

/**
 * Starts a relay for each outbox and the contexts' consumer groups on `broker` (ROLE=all or worker). A failure
 * part way stops what already started.
 */
export async function startWorkers(
  broker: Broker,
  deps: {
    outboxes: readonly RelayedOutbox[];
    consumers: readonly ConsumerSpec[];
    applicationName: string;
    logger: Logger;
    /** Told how many events each relay batch published, by outbox name. */
    onRelayed?: (outbox: string, count: number) => void;
  },
): Promise<Workers> {
  const warn = (message: string, error?: unknown) => deps.logger.warn({ err: error }, message);
  const relays: Array<{ relay: Relay; pool: Sql }> = [];
  const subscriptions: Subscription[] = [];
  const stop = async () => {
    await Promise.all(subscriptions.map((s) => s.stop()));
    await Promise.all(
      relays.map(async ({ relay, pool }) => {
        await relay.stop();
        await pool.end({ timeout: 5 });
      }),
    );
  };
  try {
    for (const outbox of deps.outboxes) {
      const pool = openRelayPool(
        outbox.target,
        deps.applicationName,
        outbox.name === 'main' ? 'relay' : `${outbox.name}-relay`,
      );
      const relay = createRelay({
        sql: pool,
        outboxPool: outbox.writers,
        broker,
        log: warn,
        onSent: (count) => deps.onRelayed?.(outbox.name, count),
      });
      relays.push({ relay, pool });
      await relay.start();
    }
    for (const consumer of deps.consumers) {
      const schemas = new Map(consumer.events.map((e) => [e.name, e] as const));
      subscriptions.push(
        await consume({
          broker,
          transaction: consumer.transaction,
          group: consumer.group,
          handler: async (event, tx) => {
            if (isOneOf(event, consumer.events)) await consumer.handle(event, tx);
          },
          // An event of a type the group handles whose payload is off its schema is dead-lettered, field named.
          reject: (event) => payloadMismatch(schemas, event),
          onError: (event, attempt, error) =>
            deps.logger.warn(
              { err: error, eventId: event.id, attempt, group: consumer.group },
              'consumer failed on an event; retrying',
            ),
        }),
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}
