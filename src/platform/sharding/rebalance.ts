import { createPool, type Sql, type TxSql } from '../db/connect.ts';
import { AppError } from '../errors/app-error.ts';
import { assignBuckets } from './buckets.ts';
import type { Shard, ShardSet } from './shard-set.ts';

/**
 * What a context provides so its buckets can move: copy a bucket's rows, copy the ones changed since a
 * snapshot, delete them. `source` reads, `target` writes; both are transactions the rebalancer owns.
 */
export interface BucketMover {
  /** Copies every row of the buckets; returns the number of rows written. */
  copyAll(source: TxSql, target: TxSql, buckets: number[]): Promise<number>;
  /**
   * Makes the target's copy equal to the source's for the rows changed since `snapshot` (a pg_snapshot of the
   * copy): re-copies changed rows, deletes those deleted meanwhile. Runs while the bucket's writers are fenced.
   */
  copyDelta(source: TxSql, target: TxSql, buckets: number[], snapshot: string): Promise<number>;
  /** Deletes every row of the buckets on a shard; returns how many (top-level) rows went. */
  clear(tx: TxSql, buckets: number[]): Promise<number>;
  /** The buckets that have rows on a shard. */
  bucketsWithRows(sql: Sql): Promise<number[]>;
}

export interface MovePlanEntry {
  bucket: number;
  from: number;
  to: number;
}

export interface RebalanceProgress {
  bucketsDone: number;
  bucketsTotal: number;
  rowsCopied: number;
  current?: MovePlanEntry;
}

export interface RebalanceOptions {
  shards: ShardSet;
  mover: BucketMover;
  /** How long the fence waits for the buckets' in-flight writers before the run gives up (a next run repairs). */
  fenceLockTimeoutMs?: number;
  /** Buckets moved together (one copy, one fence, one map version); default 32. */
  batchSize?: number;
  onProgress?: (progress: RebalanceProgress) => void;
  log?: (message: string) => void;
}

/** One rebalance (or repair) at a time per catalog ("shard rebalance" in ASCII). */
const REBALANCE_LOCK = '8319395630034113397';

/** Buckets whose shard differs between the current map and jumpHash over all registered shards. */
export function planRebalance(current: readonly number[], shardCount: number): MovePlanEntry[] {
  const wanted = assignBuckets(shardCount);
  return current.flatMap((from, bucket) => (from === wanted[bucket] ? [] : [{ bucket, from, to: wanted[bucket]! }]));
}

/**
 * Moves every bucket the map over all registered shards assigns elsewhere, a batch at a time, online:
 * 1. copy the bucket under a snapshot to the target (which does not own it yet, so nobody reads it there);
 * 2. fence: delete the bucket's ownership row on the source (waits for in-flight writers, turns new ones
 *    away to retry), copy the delta since the snapshot, and let the target own the bucket;
 * 3. switch the catalog map (a new version), release the fence, delete the source's rows.
 * A crash at any point is repaired by the next run, which first puts right what an interrupted one left.
 * Returns the moves made.
 */
export async function rebalance(options: RebalanceOptions): Promise<MovePlanEntry[]> {
  const { shards, mover } = options;
  const log = options.log ?? (() => {});
  return withRebalanceLock(shards, async () => {
    await shards.reloadShards();
    await shards.refreshMap();
    await repairLocked(shards, mover, log);
    const plan = planRebalance(shards.assignments(), shards.all().length);
    let rowsCopied = 0;
    let done = 0;
    for (const batch of batches(plan, options.batchSize ?? 32)) {
      options.onProgress?.({ bucketsDone: done, bucketsTotal: plan.length, rowsCopied, current: batch[0] });
      rowsCopied += await moveBuckets(shards, mover, batch, options.fenceLockTimeoutMs ?? 5000);
      done += batch.length;
    }
    options.onProgress?.({ bucketsDone: plan.length, bucketsTotal: plan.length, rowsCopied });
    return plan;
  });
}

/** Groups moves with the same source and target, at most `size` buckets each. */
function batches(plan: MovePlanEntry[], size: number): MovePlanEntry[][] {
  const byPair = new Map<string, MovePlanEntry[]>();
  for (const move of plan)
    byPair.set(`${move.from}>${move.to}`, [...(byPair.get(`${move.from}>${move.to}`) ?? []), move]);
  return [...byPair.values()].flatMap((moves) =>
    Array.from({ length: Math.ceil(moves.length / size) }, (_, i) => moves.slice(i * size, (i + 1) * size)),
  );
}

/** Registers a new shard in the catalog (it owns no bucket until a rebalance), opens, migrates and stamps it. */
export async function addShard(shards: ShardSet, location: { url: string } | { database: string }): Promise<Shard> {
  return withRebalanceLock(shards, async () => {
    const database = 'database' in location ? location.database : null;
    const url = 'url' in location ? location.url : null;
    const [known] = await shards.catalog<{ id: number }[]>`
      select id from sharding.shards where database is not distinct from ${database} and url is not distinct from ${url}`;
    if (known) {
      throw new AppError('SHARD.CONFIG', `${database ?? url} is shard ${known.id} already`, {
        details: { shard: known.id },
      });
    }
    const [row] = await shards.catalog<{ id: number }[]>`
      insert into sharding.shards (id, database, url)
      select coalesce(max(id) + 1, 0), ${database}, ${url} from sharding.shards
      returning id`;
    try {
      await shards.reloadShards();
    } catch (error) {
      // A database that cannot be this shard (another catalog's, or one already stamped) leaves nothing behind.
      await shards.catalog`delete from sharding.shards where id = ${row!.id}`;
      await shards.reloadShards().catch(() => {});
      throw error;
    }
    return shards.byId(row!.id);
  });
}

/**
 * Holds the rebalance lock on a connection of its own pool (not the catalog's request pool): the work under
 * the lock uses the catalog and shard pools, so holding one of theirs meanwhile would be hold-and-wait.
 */
async function withRebalanceLock<T>(shards: ShardSet, fn: () => Promise<T>): Promise<T> {
  const lockPool = createPool(shards.catalogTarget, {
    max: 1,
    applicationName: 'stratum-rebalance',
    name: 'rebalance-lock',
    connectTimeoutSeconds: 5,
  });
  try {
    const conn = await lockPool.reserve();
    try {
      const [got] = await conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${REBALANCE_LOCK}::bigint) as ok`;
      if (!got!.ok) throw new AppError('SHARD.MOVING', 'another rebalance is running on this catalog');
      try {
        return await fn();
      } finally {
        await conn`select pg_advisory_unlock(${REBALANCE_LOCK}::bigint)`;
      }
    } finally {
      conn.release();
    }
  } finally {
    await lockPool.end({ timeout: 5 });
  }
}

async function repairLocked(shards: ShardSet, mover: BucketMover, log: (m: string) => void): Promise<void> {
  const map = shards.assignments();
  for (const shard of shards.all()) {
    const owned = (await shard.sql<{ bucket: number }[]>`select bucket from shard.owned_buckets`).map((r) => r.bucket);
    const ownedSet = new Set(owned);
    // A bucket the map gives to this shard but it does not own: a crash between the target's commit and the switch.
    const missing = map.flatMap((s, bucket) => (s === shard.id && !ownedSet.has(bucket) ? [bucket] : []));
    if (missing.length > 0) {
      await shard.sql`insert into shard.owned_buckets (bucket) select unnest(${missing}::int[]) on conflict do nothing`;
      log(`repair: shard ${shard.id} owns bucket(s) ${missing.join(', ')} again, as the map says`);
    }
    // Owned here but mapped elsewhere: fence it and drop its rows (the map's shard has the current copy).
    for (const bucket of owned.filter((b) => map[b] !== shard.id)) {
      await shard.sql.begin(async (tx) => {
        await tx`delete from shard.owned_buckets where bucket = ${bucket}`;
        await mover.clear(tx, [bucket]);
      });
      log(`repair: shard ${shard.id} released bucket ${bucket}, which the map gives to shard ${map[bucket]}`);
    }
  }
  // Rows of buckets a shard does not own: copies of an interrupted move, or a source not yet cleaned up.
  for (const shard of shards.all()) {
    const owned = new Set(
      (await shard.sql<{ bucket: number }[]>`select bucket from shard.owned_buckets`).map((r) => r.bucket),
    );
    const stray = (await mover.bucketsWithRows(shard.sql)).filter((b) => !owned.has(b));
    if (stray.length > 0) await shard.sql.begin((tx) => mover.clear(tx, stray));
    if (stray.length > 0)
      log(`repair: shard ${shard.id} dropped the rows of ${stray.length} bucket(s) it does not own`);
  }
}

async function moveBuckets(
  shards: ShardSet,
  mover: BucketMover,
  moves: MovePlanEntry[],
  fenceLockTimeoutMs: number,
): Promise<number> {
  const source = shards.byId(moves[0]!.from);
  const target = shards.byId(moves[0]!.to);
  const buckets = moves.map((m) => m.bucket);
  // 1. Copy under a snapshot; the target does not own the buckets, so the copy is invisible there.
  let snapshot = '';
  let copied = 0;
  await target.sql.begin(async (into) => {
    await mover.clear(into, buckets);
    await source.sql.begin('isolation level repeatable read read only', async (from) => {
      const [row] = await from<{ snapshot: string }[]>`select pg_current_snapshot()::text as snapshot`;
      snapshot = row!.snapshot;
      copied = await mover.copyAll(from, into, buckets);
    });
  });
  // 2. Fence the buckets' writers on the source, copy what changed since the snapshot, hand the buckets over.
  const fence = await source.sql.reserve();
  try {
    await fence`begin`;
    await fence`select set_config('lock_timeout', ${String(fenceLockTimeoutMs)}, true)`;
    const fenced = await fence`delete from shard.owned_buckets where bucket = any(${buckets}::int[]) returning bucket`;
    if (fenced.length !== buckets.length)
      throw new AppError(
        'SHARD.CONFIG',
        `shard ${source.id} does not own every bucket it should move; run the rebalance again to repair`,
      );
    await target.sql.begin(async (into) => {
      copied += await mover.copyDelta(fence as unknown as TxSql, into, buckets, snapshot);
      await into`insert into shard.owned_buckets (bucket) select unnest(${buckets}::int[])`;
    });
    // 3. The switch: a new map version. Then the fence commits for good and the source's copy goes.
    await shards.catalog.begin(async (tx) => {
      const [v] = await tx<{ version: number }[]>`select max(version)::int + 1 as version from sharding.map_versions`;
      const note = `${buckets.length} bucket(s): shard ${source.id} -> ${target.id}`;
      await tx`insert into sharding.map_versions (version, shard_count, note)
        values (${v!.version}, (select count(*)::int from sharding.shards), ${note})`;
      await tx`update sharding.buckets set shard_id = ${target.id}, version = ${v!.version} where bucket = any(${buckets}::int[])`;
    });
    await fence`commit`;
  } catch (error) {
    await fence`rollback`.catch(() => {});
    throw error;
  } finally {
    fence.release();
  }
  await shards.refreshMap();
  await source.sql.begin((tx) => mover.clear(tx, buckets));
  return copied;
}

/**
 * Whether a rebalance (bucket moves) holds its lock now, in any process: read from pg_locks on the catalog.
 * @example if (await rebalanceRunning(shards.catalog)) show('moving buckets');
 */
export async function rebalanceRunning(catalog: Sql): Promise<boolean> {
  const [row] = await catalog<{ running: boolean }[]>`
    select exists (select 1 from pg_locks where locktype = 'advisory' and granted and objsubid = 1
      and classid = (${REBALANCE_LOCK}::bigint >> 32)::oid and objid = (${REBALANCE_LOCK}::bigint & 4294967295)::oid) as running`;
  return row!.running;
}
