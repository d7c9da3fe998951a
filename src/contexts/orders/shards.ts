import type { Config } from '../../config/config.ts';
import type { ConnectTarget, Sql } from '../../platform/db/connect.ts';
import type { TransactionObserver } from '../../platform/db/transaction.ts';
import { shardDatabaseMigrations } from '../../platform/sharding/shard-migrations/index.ts';
import { databaseOf, openShardSet, type ShardSet } from '../../platform/sharding/shard-set.ts';
import { ordersMigrations } from './migrations/index.ts';

/** A shard database's migrations: the platform's shard tables and outbox around the orders schema. */
export function orderShardMigrations() {
  return shardDatabaseMigrations(ordersMigrations());
}

/**
 * Opens the orders shards as configured: ORDERS_SHARDS, or ORDERS_SHARD_COUNT databases named
 * <main database>_orders_<i> on the main server; the catalog is the main database. Migrates each shard.
 * @example const shards = await openOrderShards(config, { catalog: sql, target, applicationName: 'stratum' });
 */
export function openOrderShards(
  config: Config,
  deps: {
    catalog: Sql;
    target: ConnectTarget;
    applicationName: string;
    observer?: TransactionObserver;
    log?: (line: string) => void;
  },
): Promise<ShardSet> {
  return openShardSet({
    catalog: deps.catalog,
    mainTarget: deps.target,
    initialShards: config.ordersShards ?? defaultShardDatabases(deps.target, config.ordersShardCount),
    migrations: orderShardMigrations(),
    poolMax: config.shardPoolMax,
    applicationName: deps.applicationName,
    txDeadlineMs: config.txDeadlineMs,
    statementTimeoutMs: config.statementTimeoutMs,
    observer: deps.observer,
    log: deps.log,
  });
}

function defaultShardDatabases(target: ConnectTarget, count: number): Array<{ database: string }> {
  return Array.from({ length: count }, (_, i) => ({ database: `${databaseOf(target)}_orders_${i}` }));
}
