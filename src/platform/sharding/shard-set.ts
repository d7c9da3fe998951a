import { createPool, describeTarget, type ConnectTarget, type Sql } from '../db/connect.ts';
import { createTransaction, type TransactionFn, type TransactionObserver } from '../db/transaction.ts';
import { AppError } from '../errors/app-error.ts';
import type { Migration } from '../migrate/migration.ts';
import { createMigrator } from '../migrate/migrator.ts';
import { assignBuckets, BUCKET_COUNT, MAX_SHARDS } from './buckets.ts';

/** One shard: a database with the shard schema, its pool and transactions on it. */
export interface Shard {
  id: number;
  /** For messages and metrics: the database name, or the URL's hosts and database. */
  name: string;
  target: ConnectTarget;
  sql: Sql;
  /** A connection of its own for recovery (in-doubt branches), outside the request pool: a saturated pool cannot starve it. */
  background: Sql;
  transaction: TransactionFn;
}

/** Where a shard is: a database on the main server, or a server of its own. */
export type ShardLocation = { database: string } | { url: string };

export interface ShardSetOptions {
  /** The catalog (shards, bucket map, decisions), already migrated. */
  catalog: Sql;
  /** The main server: shards given as database names live there. */
  mainTarget: ConnectTarget;
  /** Shards to register when the catalog has none yet. */
  initialShards: readonly ShardLocation[];
  /** The shard schema, applied (up) to every shard at open. */
  migrations: readonly Migration[];
  poolMax: number;
  applicationName: string;
  txDeadlineMs: number;
  statementTimeoutMs?: number;
  observer?: TransactionObserver;
  /** How often the bucket map's version is checked (another process may have moved buckets). */
  mapRefreshMs?: number;
  log?: (line: string) => void;
}

export interface ShardSet {
  all(): Shard[];
  byId(id: number): Shard;
  /** The shard that owns `bucket` in the current map. */
  ofBucket(bucket: number): Shard;
  mapVersion(): number;
  /** Every bucket's shard id, by bucket number. */
  assignments(): readonly number[];
  /** Reloads the bucket map if its version changed; returns the version now held. */
  refreshMap(): Promise<number>;
  /** Opens a shard registered in the catalog after this set was opened (a shard added by `shards add`). */
  reloadShards(): Promise<void>;
  catalog: Sql;
  /** A catalog connection of its own for recovery, outside the request pools. */
  catalogBackground: Sql;
  /** Where the catalog is, for a connection of its own (the rebalance lock). */
  catalogTarget: ConnectTarget;
  close(timeoutSeconds?: number): Promise<void>;
}

/** Serialises catalog bootstraps of concurrent starts ("shard catalog" in ASCII). */
const BOOTSTRAP_LOCK = '8319395630034113396';

export function targetForDatabase(main: ConnectTarget, database: string): ConnectTarget {
  if ('url' in main) {
    const u = new URL(
      main.url.replace(/^(postgres(?:ql)?:\/\/)([^/?]*)/i, (_m, scheme: string) => `${scheme}placeholder`),
    );
    // Only the database part changes; a multi-host list is kept as written.
    const hosts = /^postgres(?:ql)?:\/\/([^/?]*)/i.exec(main.url)?.[1] ?? '';
    u.pathname = `/${database}`;
    return { ...main, url: u.toString().replace('placeholder', hosts) };
  }
  return { ...main, database };
}

export function databaseOf(target: ConnectTarget): string {
  if ('url' in target) {
    const path = /^postgres(?:ql)?:\/\/[^/?]*\/([^?]*)/i.exec(target.url)?.[1];
    return decodeURIComponent(path || 'postgres');
  }
  return target.database;
}

/**
 * Where a shard of the catalog lives and what it is called, from its `sharding.shards` row.
 * @example const { target, name } = shardOfRow(mainTarget, { database: 'app_orders_0', url: null });
 */
export function shardOfRow(
  main: ConnectTarget,
  row: { database: string | null; url: string | null },
): { target: ConnectTarget; name: string } {
  const location: ShardLocation = row.database !== null ? { database: row.database } : { url: row.url! };
  return { target: locationTarget(main, location), name: locationName(location) };
}

function locationTarget(main: ConnectTarget, location: ShardLocation): ConnectTarget {
  return 'database' in location ? targetForDatabase(main, location.database) : { url: location.url };
}

function locationName(location: ShardLocation): string {
  if ('database' in location) return location.database;
  const target = { url: location.url };
  return `${describeTarget(target)}/${databaseOf(target)}`;
}

const SAFE_DATABASE = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Opens every shard of the catalog (registering `initialShards` when it has none), migrates each, checks it is
 * the shard the catalog says it is, and loads the bucket map. Fails with one line naming the shard otherwise.
 * @example const shards = await openShardSet({ catalog, mainTarget, initialShards: [{ database: 'app_orders_0' }], ... });
 */
export async function openShardSet(options: ShardSetOptions): Promise<ShardSet> {
  const { catalog } = options;
  const log = options.log ?? (() => {});
  await bootstrapCatalog(options);
  const shards = new Map<number, Shard>();
  let version = 0;
  let assignments: number[] = [];

  async function openShard(
    row: { id: number; database: string | null; url: string | null },
    catalogId: string,
  ): Promise<Shard> {
    const location: ShardLocation = row.database !== null ? { database: row.database } : { url: row.url! };
    const target = locationTarget(options.mainTarget, location);
    const name = locationName(location);
    const sql = createPool(target, {
      max: options.poolMax,
      applicationName: options.applicationName,
      connectTimeoutSeconds: 5,
      statementTimeoutMs: options.statementTimeoutMs,
      name: `shard-${row.id}`,
    });
    try {
      await prepareShard(sql, row.id, name, catalogId, options.migrations, catalog);
    } catch (error) {
      await sql.end({ timeout: 1 });
      throw error;
    }
    const background = createPool(target, {
      max: 1,
      applicationName: `${options.applicationName}-recovery`,
      connectTimeoutSeconds: 5,
      statementTimeoutMs: 10_000,
      name: `shard-${row.id}-recovery`,
      acquireWaitMs: 10_000,
    });
    const transaction = createTransaction({
      sql,
      defaultDeadlineMs: options.txDeadlineMs,
      now: Date.now,
      random: Math.random,
      observer: options.observer,
    });
    return { id: row.id, name, target, sql, background, transaction };
  }

  async function loadShards(): Promise<void> {
    const [meta] = await catalog<{ id: string }[]>`select id from sharding.catalog`;
    const rows = await catalog<
      { id: number; database: string | null; url: string | null }[]
    >`select id, database, url from sharding.shards order by id`;
    for (const row of rows) {
      if (shards.has(row.id)) continue;
      shards.set(row.id, await openShard(row, meta!.id));
      log(`shard ${row.id} ready: ${shards.get(row.id)!.name}`);
    }
  }

  async function refreshMap(): Promise<number> {
    const [row] = await catalog<
      { version: number }[]
    >`select coalesce(max(version), 0)::int as version from sharding.map_versions`;
    if (row!.version === version) return version;
    const rows = await catalog<
      { bucket: number; shard_id: number }[]
    >`select bucket, shard_id from sharding.buckets order by bucket`;
    const next = new Array<number>(BUCKET_COUNT);
    for (const r of rows) next[r.bucket] = r.shard_id;
    if (next.some((s) => !shards.has(s))) await loadShards();
    assignments = next;
    version = row!.version;
    return version;
  }

  const catalogBackground = createPool(options.mainTarget, {
    max: 1,
    applicationName: `${options.applicationName}-recovery`,
    connectTimeoutSeconds: 5,
    statementTimeoutMs: 10_000,
    name: 'catalog-recovery',
    acquireWaitMs: 10_000,
  });
  // Set once the map has loaded; a failed start closes before it is.
  let timer: NodeJS.Timeout | undefined = undefined;
  const closeAll = async (timeoutSeconds = 5) => {
    clearInterval(timer);
    await Promise.all(
      [...shards.values()].flatMap((s) => [
        s.sql.end({ timeout: timeoutSeconds }),
        s.background.end({ timeout: timeoutSeconds }),
      ]),
    );
    await catalogBackground.end({ timeout: timeoutSeconds });
  };
  try {
    await loadShards();
    await refreshMap();
  } catch (error) {
    await closeAll(0);
    throw error;
  }
  const refreshMs = options.mapRefreshMs ?? 1000;
  timer = setInterval(() => {
    refreshMap().catch((error) => log(`shard map refresh failed: ${(error as Error).message}`));
  }, refreshMs);
  timer.unref();

  const byId = (id: number): Shard => {
    const shard = shards.get(id);
    if (!shard) throw new AppError('SHARD.UNAVAILABLE', `shard ${id} is not open`, { details: { shards: [id] } });
    return shard;
  };
  return {
    all: () => [...shards.values()].sort((a, b) => a.id - b.id),
    byId,
    ofBucket: (bucket) => byId(assignments[bucket]!),
    mapVersion: () => version,
    assignments: () => assignments,
    refreshMap,
    reloadShards: loadShards,
    catalog,
    catalogBackground,
    catalogTarget: options.mainTarget,
    close: closeAll,
  };
}

/**
 * First start of a catalog: registers the initial shards (creating database-kind shards on the main server)
 * and map version 1, every bucket on jumpHash(bucket, n). Later starts find the shards registered and keep them.
 */
async function bootstrapCatalog(options: ShardSetOptions): Promise<void> {
  const { catalog } = options;
  await catalog.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK}::bigint)`;
    await tx`insert into sharding.catalog default values on conflict do nothing`;
    const [row] = await tx<{ n: number }[]>`select count(*)::int as n from sharding.shards`;
    if (row!.n > 0) return;
    const initial = options.initialShards;
    if (initial.length < 1 || initial.length > MAX_SHARDS)
      throw new AppError('SHARD.CONFIG', `between 1 and ${MAX_SHARDS} shards are needed, got ${initial.length}`);
    for (const [id, location] of initial.entries()) {
      if ('database' in location) await createDatabaseIfMissing(options.mainTarget, location.database);
      await tx`insert into sharding.shards (id, database, url) values (${id}, ${'database' in location ? location.database : null}, ${'url' in location ? location.url : null})`;
    }
    await tx`insert into sharding.map_versions (version, shard_count, note) values (1, ${initial.length}, 'initial: jump hash over the buckets')`;
    const shardOf = assignBuckets(initial.length);
    await tx`insert into sharding.buckets (bucket, shard_id, version) select b, s, 1 from unnest(${shardOf.map((_, b) => b)}::int[], ${shardOf}::int[]) as t(b, s)`;
  });
}

/** Creates a database on the main server unless it exists (a shard's database at first start or `shards add`). */
export async function createDatabaseIfMissing(mainTarget: ConnectTarget, database: string): Promise<void> {
  if (!SAFE_DATABASE.test(database))
    throw new AppError(
      'SHARD.CONFIG',
      `"${database}" is not a database name stratum creates (lower case letters, digits, _)`,
    );
  const admin = createPool(mainTarget, { max: 1, applicationName: 'stratum-shards', connectTimeoutSeconds: 5 });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${database}`;
    if (!exists) {
      await admin.unsafe(`create database ${database}`).catch((error: { code?: string }) => {
        if (error?.code !== '42P04') throw error; // created meanwhile by another process
      });
    }
  } finally {
    await admin.end({ timeout: 1 });
  }
}

/**
 * Migrates a shard, then checks its stamp: a database joins as shard `id` of this catalog once (its buckets
 * from the map are written with the stamp); a database stamped for another id or catalog is refused.
 */
async function prepareShard(
  sql: Sql,
  id: number,
  name: string,
  catalogId: string,
  migrations: readonly Migration[],
  catalog: Sql,
): Promise<void> {
  const migrator = createMigrator({ sql, migrations });
  try {
    await migrator.up();
  } catch (error) {
    const message = (error as Error).message;
    throw new AppError('SHARD.SCHEMA', `shard ${id} (${name}) is not on this build's schema: ${message}`, {
      cause: error,
    });
  }
  const buckets = (
    await catalog<{ bucket: number }[]>`select bucket from sharding.buckets where shard_id = ${id} order by bucket`
  ).map((r) => r.bucket);
  await sql.begin(async (tx) => {
    const [stamp] = await tx<
      { shard_id: number; catalog_id: string }[]
    >`select shard_id, catalog_id from shard.info for update`;
    if (!stamp) {
      await tx`insert into shard.info (shard_id, catalog_id) values (${id}, ${catalogId})`;
      await tx`insert into shard.owned_buckets (bucket) select unnest(${buckets}::int[]) on conflict do nothing`;
      return;
    }
    if (stamp.shard_id !== id || stamp.catalog_id !== catalogId) {
      throw new AppError(
        'SHARD.CONFIG',
        `database ${name} is shard ${stamp.shard_id} of catalog ${stamp.catalog_id}, not shard ${id} of catalog ${catalogId}`,
      );
    }
  });
}
