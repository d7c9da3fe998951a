import type { Logger } from 'pino';
import type { Config } from './config/config.ts';
import { accountViewKey } from './contexts/accounts/routes.ts';
import { orderKey } from './contexts/orders/routes.ts';
import { USER_EVENTS_KEY } from './contexts/users/routes.ts';
import { applyScoreFanOut } from './contexts/users/users-repository.ts';
import { invalidateOnEvents, type ReadCache } from './platform/cache/index.ts';
import { createPool, type ConnectTarget, type Sql } from './platform/db/connect.ts';
import type { TransactionFn } from './platform/db/transaction.ts';
import type { Broker, OutboxEvent, Subscription } from './platform/messaging/broker.ts';
import { consume } from './platform/messaging/consumer.ts';
import { createPostgresBroker } from './platform/messaging/postgres/postgres-broker.ts';
import { createRelay, type Relay } from './platform/messaging/relay.ts';

/** The consumer group that applies deferred score fan-outs (SCORE_MODE=async). */
export const SCORE_FANOUT_GROUP = 'users.score-fanout';

/** Opens the configured broker: the PostgreSQL log by default, or RabbitMQ, NATS JetStream, Redis Streams. */
export async function openBroker(config: Config, admin: Sql, logger: Logger): Promise<Broker> {
  const log = (message: string, error?: unknown) => logger.warn({ err: error }, message);
  switch (config.broker) {
    case 'postgres':
      return createPostgresBroker({ sql: admin, log });
    case 'rabbitmq': {
      const { createRabbitMqBroker } = await import('./platform/messaging/rabbitmq/index.ts');
      // Groups declared up front: a direct exchange drops events published before their group's queues exist.
      return createRabbitMqBroker({ url: config.brokerUrl!, namespace: 'stratum', groups: [SCORE_FANOUT_GROUP], log });
    }
    case 'nats': {
      const { createNatsBroker } = await import('./platform/messaging/nats/index.ts');
      return createNatsBroker({ servers: config.brokerUrl!, namespace: 'stratum', log });
    }
    case 'redis': {
      const { createRedisStreamsBroker } = await import('./platform/messaging/redis/index.ts');
      return createRedisStreamsBroker({ url: config.brokerUrl!, namespace: 'stratum', log });
    }
  }
}

export interface Messaging {
  broker: Broker;
  /** Stops consumers (finishing what they hold) and the relay, then closes the broker. */
  stop(): Promise<void>;
}

/**
 * The background side: the outbox relay and stratum's own consumers, when this process is a worker
 * (ROLE=all or worker).
 */
export async function startMessaging(
  config: Config,
  deps: { admin: Sql; target: ConnectTarget; applicationName: string; transaction: TransactionFn; logger: Logger },
): Promise<Messaging> {
  const broker = await openBroker(config, deps.admin, deps.logger);
  const subscriptions: Subscription[] = [];
  let relay: Relay | undefined;
  let relayPool: Sql | undefined;
  try {
    if (config.role !== 'api') {
      relayPool = openRelayPool(deps.target, deps.applicationName, 'relay');
      relay = createRelay({ sql: relayPool, outboxPool: deps.admin, broker, log: (m, e) => deps.logger.warn({ err: e }, m) });
      await relay.start();
      if (config.scoreMode === 'async') {
        subscriptions.push(await consume({
          broker, transaction: deps.transaction, group: SCORE_FANOUT_GROUP,
          handler: async (event, tx) => {
            if (event.type !== 'user.created' || event.key !== USER_EVENTS_KEY) return;
            const { id, others } = event.payload as { id: number; others?: number };
            if (typeof others === 'number') await applyScoreFanOut(tx, id, others);
          },
          onError: (event, attempt, error) => deps.logger.warn({ err: error, eventId: event.id, attempt }, 'score fan-out failed; retrying'),
        }));
      }
    }
  } catch (error) {
    await Promise.all(subscriptions.map((s) => s.stop()));
    await relay?.stop();
    await relayPool?.end({ timeout: 5 });
    await broker.close();
    throw error;
  }
  return {
    broker,
    async stop() {
      await Promise.all(subscriptions.map((s) => s.stop()));
      await relay?.stop();
      await relayPool?.end({ timeout: 5 });
      await broker.close();
    },
  };
}

/**
 * A relay's own connections: one for its batch transaction, one for its wake gate's session locks (held for
 * as long as it is awake). Outside the request pools, so a saturated pool neither starves the relay nor is
 * starved by it.
 * @example const pool = openRelayPool(shard.target, 'stratum', 'shard-0-relay');
 */
export function openRelayPool(target: ConnectTarget, applicationName: string, name: string): Sql {
  return createPool(target, { max: 2, applicationName: `${applicationName}-relay`, name, connectTimeoutSeconds: 5, acquireWaitMs: 10_000 });
}

/** The read caches whose entries the events of other instances' writes make stale. */
export interface InvalidatedCaches {
  accounts: Pick<ReadCache<unknown>, 'forget'>;
  orders: Pick<ReadCache<unknown>, 'forget'>;
}

/** The cached orders an orders event changed: the order, and for a transfer the id it had before. */
function orderKeysOf(event: OutboxEvent): string[] {
  const payload = event.payload as { id?: unknown; previousId?: unknown } | null;
  return [payload?.id, payload?.previousId].filter((id) => typeof id === 'number' || typeof id === 'string').map((id) => orderKey(Number(id)));
}

const ORDER_CHANGES = new Set(['order.status_changed', 'order.items_imported', 'order.transferred', 'order.deleted']);

/**
 * When no shared cache tier tells the instances about each other's writes (no REDIS_URL), drops this
 * instance's cached account views and orders as the events of those writes arrive (decision 0017).
 * @example const following = await followCacheInvalidations(messaging.broker, { accounts: cache, orders: orderCache }, logger);
 */
export function followCacheInvalidations(broker: Broker, caches: InvalidatedCaches, logger: Logger): Promise<Subscription> {
  return invalidateOnEvents({
    follow: (listener) => broker.follow(listener),
    rules: [
      { cache: caches.accounts, keysOf: (e) => (e.type === 'account.updated' || e.type === 'image.changed' ? [accountViewKey(e.key)] : []) },
      { cache: caches.orders, keysOf: (e) => (ORDER_CHANGES.has(e.type) ? orderKeysOf(e) : []) },
    ],
    onError: (error, event) => logger.warn({ err: error, eventId: event.id, type: event.type }, 'cache invalidation: could not read an event'),
  });
}
