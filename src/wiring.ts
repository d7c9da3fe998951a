import { TaskCancelledError } from 'cockatiel';
import { createClient } from 'redis';
import type { Config } from './config/config.ts';
import type { ContextPools } from './context-pools.ts';
import type { AccountView, ImageLookup } from './contexts/accounts/account.ts';
import { accountExists } from './contexts/accounts/accounts-repository.ts';
import { accountsRoutes, accountViewKey } from './contexts/accounts/routes.ts';
import { findAccountImage } from './contexts/images/images-repository.ts';
import { imagesRoutes } from './contexts/images/routes.ts';
import { usersRoutes } from './contexts/users/routes.ts';
import type { Order } from './contexts/orders/order.ts';
import { createOrdersService } from './contexts/orders/orders-service.ts';
import { createSimulatedPayments } from './contexts/orders/payments.ts';
import { ordersRoutes } from './contexts/orders/routes.ts';
import { openOrderShards } from './orders-shards.ts';
import type { App } from './http/app.ts';
import { adminRoutes } from './http/admin.ts';
import { followCacheInvalidations, openRelayPool, startMessaging } from './messaging-wiring.ts';
import { createReadCache, createRedisTier } from './platform/cache/index.ts';
import type { ConnectTarget, Sql } from './platform/db/connect.ts';
import { faultPoints } from './platform/faults.ts';
import { deleteExpiredKeys } from './platform/idempotency/idempotency.ts';
import { createRelay, type Relay } from './platform/messaging/relay.ts';
import { startShardMaintenance } from './platform/sharding/maintenance.ts';
import { probeShards, type ShardHealth } from './platform/sharding/health.ts';
import { refusingSince } from './platform/db/pool-gate.ts';
import { isConnectionError } from './platform/db/pg-errors.ts';
import { createTransaction, type TransactionFn } from './platform/db/transaction.ts';
import type { Metrics } from './platform/observability/metrics.ts';
import { AppError } from './platform/errors/app-error.ts';
import type { Logger } from 'pino';
import { createDependencyPolicy } from './platform/resilience/dependency-policy.ts';

/** How long a shard may take to answer readiness's probe. */
const SHARD_PROBE_MS = 800;
/** A pool that refused a caller this recently makes the service not ready. */
const REFUSING_WINDOW_MS = 5000;

export interface WiredContexts {
  routes: Array<(app: App) => void>;
  /** The users context's transaction function (the administrative pool). */
  transaction: TransactionFn;
  /** Rejects with an AppError naming the shard or pool while a shard does not answer or a pool keeps refusing callers. */
  readiness(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Connects the bounded contexts to the platform and to each other's small ports: each context gets
 * transactions on its own pool; accounts reads images through a resilience policy; writes of either context
 * drop the account's cached view after they commit.
 */
export async function wireContexts(
  config: Config,
  deps: { admin: Sql; target: ConnectTarget; pools: ContextPools; applicationName: string; metrics: Metrics; logger: Logger },
): Promise<WiredContexts> {
  const transactionOn = (sql: Sql) => createTransaction({
    sql, defaultDeadlineMs: config.txDeadlineMs, now: Date.now, random: Math.random, observer: deps.metrics.transactionObserver,
  });
  const usersTransaction = transactionOn(deps.admin);
  const accountsTransaction = transactionOn(deps.pools.accounts);

  const redis = config.redisUrl ? await connectRedis(config.redisUrl, deps.logger) : undefined;
  // Started after Redis answered, so a Redis failure at start leaves no relay or consumer running.
  const messaging = await startMessaging(config, { admin: deps.admin, target: deps.target, applicationName: deps.applicationName, transaction: usersTransaction, logger: deps.logger })
    .catch(async (error) => { if (redis?.isOpen) await redis.quit(); throw error; });
  const cache = createReadCache<AccountView>({
    namespace: 'stratum:accounts',
    ttlMs: config.cacheTtlMs,
    maxEntries: config.cacheMaxEntries,
    observer: deps.metrics.cacheObserver('accounts'),
    shared: redis ? createRedisTier({
      client: redis, namespace: 'stratum:accounts', ttlMs: config.cacheTtlMs,
      onError: (error, context) => deps.logger.warn({ err: error, ...context }, 'shared cache tier unavailable; serving from the local tier and the database'),
    }) : undefined,
  });

  // Orders live on shards: each a database with the orders schema, found through the catalog's bucket map.
  const fault = faultPoints(config.faults);
  const warn = (message: string, error?: unknown) => deps.logger.warn({ err: error }, message);
  const shards = await openOrderShards(config, {
    catalog: deps.admin, target: deps.target, applicationName: deps.applicationName,
    observer: deps.metrics.transactionObserver, log: (line) => deps.logger.info(line),
  }).catch(async (error) => { await messaging.stop(); if (redis?.isOpen) await redis.quit(); throw error; });
  const orders = createOrdersService({
    shards, payments: createSimulatedPayments(deps.admin), shardDeadlineMs: config.shardDeadlineMs,
    txDeadlineMs: config.txDeadlineMs, importDeadlineMs: config.importDeadlineMs, sagaLeaseMs: config.sagaLeaseMs, fault, log: warn,
  });
  // In-doubt two-phase commits and unfinished sagas of a process that died are finished before serving.
  const maintenance = await startShardMaintenance({
    shards, sagas: orders.sagas, sagaDefinitions: [orders.checkoutSaga as never], graceMs: config.inDoubtGraceMs, log: warn,
  });
  // What readiness and the metrics watch: every request pool's admission, and the shards on their recovery connections.
  const requestPools = () => [
    deps.admin, deps.pools.accounts, deps.pools.images, ...(deps.pools.reads ? [deps.pools.reads.admin, deps.pools.reads.accounts] : []),
    ...shards.all().map((s) => s.sql),
  ];
  deps.metrics.watchPools(requestPools);
  let lastProbe: { at: number; health: Promise<ShardHealth> } | undefined;
  const probe = () => {
    // One probe serves the gauges of a scrape and a readiness check close to it.
    if (!lastProbe || Date.now() - lastProbe.at > 500) lastProbe = { at: Date.now(), health: probeShards(shards, SHARD_PROBE_MS) };
    return lastProbe.health;
  };
  deps.metrics.gauge('stratum_twophase_in_doubt', 'Two-phase branches prepared on the orders shards and not yet committed or rolled back', async () => (await probe()).inDoubt);
  deps.metrics.gauge('stratum_sagas_unfinished', 'Sagas still running or compensating', async () => (await probe()).unfinishedSagas);
  const readiness = async () => {
    const health = await probe();
    if (health.unreachable.length > 0) {
      const names = health.unreachable.map((s) => `${s.id} (${s.name})`).join(', ');
      throw new AppError('SHARD.UNAVAILABLE', `orders shard ${names} did not answer within ${SHARD_PROBE_MS} ms`,
        { details: { shards: health.unreachable.map(({ id, name }) => ({ id, name })) } });
    }
    const refusing = refusingSince(requestPools(), Date.now() - REFUSING_WINDOW_MS);
    if (refusing.length > 0) {
      throw new AppError('DB.POOL_EXHAUSTED', `pool ${refusing.map((p) => p.name).join(', ')} refused callers within the last ${REFUSING_WINDOW_MS / 1000} s`,
        { details: { pools: refusing.map(({ name, max, inUse, waiting }) => ({ name, max, inUse, waiting })) } });
    }
    return { shards: shards.all().length, inDoubt: health.inDoubt, unfinishedSagas: health.unfinishedSagas };
  };
  // Expired idempotency keys go now and then, on the main database and every shard.
  const keySweep = setInterval(() => {
    for (const sql of [deps.admin, ...shards.all().map((s) => s.sql)]) deleteExpiredKeys(sql).catch((error) => warn('deleting expired idempotency keys failed', error));
  }, 10 * 60_000);
  keySweep.unref();
  // Each shard's outbox has its own relay (the worker role's job).
  const shardRelays: Array<{ relay: Relay; pool: Sql }> = [];
  if (config.role !== 'api') {
    for (const shard of shards.all()) {
      const pool = openRelayPool(shard.target, deps.applicationName, `shard-${shard.id}-relay`);
      const relay = createRelay({ sql: pool, outboxPool: shard.sql, broker: messaging.broker, log: warn });
      shardRelays.push({ relay, pool });
      await relay.start();
    }
  }

  const orderCache = createReadCache<Order>({
    namespace: 'stratum:orders',
    ttlMs: config.cacheTtlMs,
    maxEntries: config.cacheMaxEntries,
    observer: deps.metrics.cacheObserver('orders'),
    shared: redis ? createRedisTier({
      client: redis, namespace: 'stratum:orders', ttlMs: config.cacheTtlMs,
      onError: (error, context) => deps.logger.warn({ err: error, ...context }, 'shared cache tier unavailable; serving from the local tier and the database'),
    }) : undefined,
  });
  // Without Redis, the caches hear of other instances' writes through their events (decision 0017).
  const following = redis ? undefined : await followCacheInvalidations(messaging.broker, { accounts: cache, orders: orderCache }, deps.logger);

  const imagesPolicy = createDependencyPolicy({
    attemptTimeoutMs: config.imagesTimeoutMs,
    retries: 1,
    breakerThreshold: 5,
    halfOpenAfterMs: 5000,
    isTransient: (error) => error instanceof TaskCancelledError || isConnectionError(error),
  });
  const lookupImage: ImageLookup = (accountId, signal) =>
    imagesPolicy.execute((attemptSignal) => findAccountImage(deps.pools.images, accountId, attemptSignal), signal);

  return {
    transaction: usersTransaction,
    readiness,
    routes: [
      usersRoutes({
        sql: deps.admin, transaction: usersTransaction, scoreMode: config.scoreMode, idempotencyTtlMs: config.idempotencyTtlMs,
        ...(deps.pools.reads ? { readTransaction: transactionOn(deps.pools.reads.admin) } : {}),
      }),
      adminRoutes({ token: config.adminToken, deadLetters: messaging.broker.deadLetters }),
      accountsRoutes({
        sql: deps.pools.accounts, transaction: accountsTransaction, idempotencyTtlMs: config.idempotencyTtlMs, lookupImage, cache,
        ...(deps.pools.reads ? { readTransaction: transactionOn(deps.pools.reads.accounts) } : {}),
        onViewLoad: () => deps.metrics.countCacheLoad('accounts'),
      }),
      imagesRoutes({
        transaction: transactionOn(deps.pools.images),
        // Through transaction(): the check runs again when a failover cuts it.
        accountExists: (id) => accountsTransaction({ label: 'accounts.exists', readOnly: true, autocommit: true }, (tx) => accountExists(tx, id)),
        afterImageChanged: (id) => cache.invalidate(accountViewKey(id)),
      }),
      ordersRoutes({
        orders,
        idempotencyTtlMs: config.idempotencyTtlMs,
        importDeadlineMs: config.importDeadlineMs,
        cache: {
          getOrLoad: (key, load) => orderCache.getOrLoad(key, (signal) => { deps.metrics.countCacheLoad('orders'); return load(signal); }),
          invalidate: (key) => orderCache.invalidate(key),
        },
      }),
    ],
    async close() {
      clearInterval(keySweep);
      await maintenance.stop();
      await Promise.all(shardRelays.map(async ({ relay, pool }) => { await relay.stop(); await pool.end({ timeout: 5 }); }));
      await following?.stop();
      await messaging.stop();
      await shards.close();
      await cache.close();
      await orderCache.close();
      if (redis?.isOpen) await redis.quit();
    },
  };
}

const REDIS_CONNECT_TIMEOUT_MS = 5000;

/**
 * Connects the shared cache tier's client, or fails start-up with one line. Once connected, node-redis
 * reconnects by itself; the cache serves from its local tier and the database meanwhile.
 */
async function connectRedis(url: string, logger: Logger) {
  const client = createClient({ url, socket: { connectTimeout: REDIS_CONNECT_TIMEOUT_MS, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000) } });
  let lastError: unknown;
  client.on('error', (error) => {
    lastError = error;
    if (client.isReady) logger.warn({ err: error }, 'redis connection error');
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_CONNECT_TIMEOUT_MS} ms`)), REDIS_CONNECT_TIMEOUT_MS); }),
    ]);
    return client;
  } catch (error) {
    client.destroy();
    const where = new URL(url).host;
    const cause = (lastError as Error | undefined)?.message || (error as Error).message;
    throw new AppError('SERVICE.UNAVAILABLE', `cannot reach Redis at ${where}: ${cause}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
