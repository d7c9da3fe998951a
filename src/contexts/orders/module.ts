import type { Config } from '../../config/config.ts';
import type { ContextModule } from '../../platform/context/context-module.ts';
import { payloadIf } from '../../platform/context/events.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import { faultPoints } from '../../platform/faults.ts';
import type { OutboxEvent } from '../../platform/messaging/broker.ts';
import { probeShards, type ShardHealth } from '../../platform/sharding/health.ts';
import { startShardMaintenance } from '../../platform/sharding/maintenance.ts';
import { rebalanceRunning } from '../../platform/sharding/rebalance.ts';
import { ORDERS_ERRORS } from './errors.ts';
import { ORDER_CHANGES, ORDERS_EVENTS } from './events.ts';
import { ordersMigrations } from './migrations/index.ts';
import type { Order } from './order.ts';
import { createOrdersService } from './orders-service.ts';
import { paymentsMigrations } from './payments-migrations/index.ts';
import { createSimulatedPayments } from './payments.ts';
import { orderKey, ordersRoutes } from './routes.ts';
import { openOrderShards } from './shards.ts';

/** How long a shard may take to answer readiness's probe. */
const SHARD_PROBE_MS = 800;

/** The cached orders an orders event makes stale: the order, and for a transfer the id it had before. */
function staleOrderKeys(event: OutboxEvent): string[] {
  for (const type of ORDER_CHANGES) {
    const payload = payloadIf(event, type) as { id: number; previousId?: number } | undefined;
    if (payload) return [payload.id, payload.previousId].filter((id) => id !== undefined).map((id) => orderKey(id));
  }
  return [];
}

/**
 * Orders on shards: each shard a database with the orders schema, found through the catalog's bucket map on the
 * main database (which also keeps saga progress and the payments simulator's ledger). In-doubt two-phase commits
 * and unfinished sagas of a process that died are finished before the context serves; every shard's outbox is
 * relayed.
 */
export const ordersModule: ContextModule<Config> = {
  name: 'orders',
  migrations: paymentsMigrations,
  shardMigrations: ordersMigrations,
  errors: ORDERS_ERRORS,
  events: ORDERS_EVENTS,
  async start(platform) {
    const { config } = platform;
    const warn = (message: string, error?: unknown) => platform.logger.warn({ err: error }, message);
    const shards = await openOrderShards(config, {
      catalog: platform.admin,
      target: platform.target,
      applicationName: platform.applicationName,
      observer: platform.metrics.transactionObserver,
      log: (line) => platform.logger.info(line),
    });
    const cache = platform.cache<Order>('orders');
    try {
      const orders = createOrdersService({
        shards,
        payments: createSimulatedPayments(platform.admin),
        shardDeadlineMs: config.shardDeadlineMs,
        txDeadlineMs: config.txDeadlineMs,
        importDeadlineMs: config.importDeadlineMs,
        sagaLeaseMs: config.sagaLeaseMs,
        fault: faultPoints(config.faults),
        log: warn,
      });
      const maintenance = await startShardMaintenance({
        shards,
        sagas: orders.sagas,
        sagaDefinitions: [orders.checkoutSaga as never],
        graceMs: config.inDoubtGraceMs,
        log: warn,
      });
      let lastProbe: { at: number; health: Promise<ShardHealth> } | undefined;
      const probe = () => {
        // One probe serves the gauges of a scrape and a readiness check close to it.
        if (!lastProbe || Date.now() - lastProbe.at > 500)
          lastProbe = { at: Date.now(), health: probeShards(shards, SHARD_PROBE_MS) };
        return lastProbe.health;
      };
      platform.metrics.gauge(
        'stratum_twophase_in_doubt',
        'Two-phase branches prepared on the orders shards and not yet committed or rolled back',
        async () => (await probe()).inDoubt,
      );
      platform.metrics.gauge(
        'stratum_sagas_unfinished',
        'Sagas still running or compensating',
        async () => (await probe()).unfinishedSagas,
      );
      return {
        routes: ordersRoutes({
          orders,
          idempotencyTtlMs: config.idempotencyTtlMs,
          importDeadlineMs: config.importDeadlineMs,
          cache: {
            getOrLoad: (key, load) =>
              cache.getOrLoad(key, (signal) => {
                platform.metrics.countCacheLoad('orders');
                return load(signal);
              }),
            invalidate: (key) => cache.invalidate(key),
          },
        }),
        cacheRules: [{ cache, keysOf: staleOrderKeys }],
        outboxes: shards
          .all()
          .map((shard) => ({ name: `shard-${shard.id}`, target: shard.target, writers: shard.sql })),
        pools: () => shards.all().map((s) => s.sql),
        idempotencyStores: () => shards.all().map((s) => s.sql),
        browse: () => ({
          schemas: ['orders', 'payments'],
          databases: [
            { name: 'main', sql: platform.sql },
            ...shards.all().map((shard) => ({ name: `shard-${shard.id}`, sql: shard.sql })),
          ],
        }),
        async status() {
          const [health, moving, rows] = await Promise.all([
            probe(),
            rebalanceRunning(shards.catalog).catch(() => null),
            Promise.all(
              shards.all().map(async (shard) => {
                // The planner's estimate: cheap, and what a console needs.
                const [row] = await shard.sql<{ n: string }[]>`
                  select greatest(reltuples, 0)::bigint as n from pg_class where oid = 'orders.orders'::regclass`.catch(
                  () => [undefined],
                );
                return row ? Number(row.n) : null;
              }),
            ),
          ]);
          const assignments = shards.assignments();
          return {
            mapVersion: shards.mapVersion(),
            rebalancing: moving,
            inDoubt: health.inDoubt,
            unfinishedSagas: health.unfinishedSagas,
            shards: shards.all().map((shard, i) => ({
              id: shard.id,
              name: shard.name,
              buckets: assignments.filter((owner) => owner === shard.id).length,
              rows: rows[i] ?? null,
              healthy: !health.unreachable.some((u) => u.id === shard.id),
            })),
          };
        },
        async readiness() {
          const health = await probe();
          if (health.unreachable.length > 0) {
            const names = health.unreachable.map((s) => `${s.id} (${s.name})`).join(', ');
            throw new AppError(
              'SHARD.UNAVAILABLE',
              `orders shard ${names} did not answer within ${SHARD_PROBE_MS} ms`,
              { details: { shards: health.unreachable.map(({ id, name }) => ({ id, name })) } },
            );
          }
          return { shards: shards.all().length, inDoubt: health.inDoubt, unfinishedSagas: health.unfinishedSagas };
        },
        async close() {
          await maintenance.stop();
          await shards.close();
          await cache.close();
        },
      };
    } catch (error) {
      await shards.close();
      await cache.close();
      throw error;
    }
  },
};
