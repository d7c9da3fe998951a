import type { Sql, TxSql } from '../db/connect.ts';
import type { TransactionOptions } from '../db/transaction.ts';
import { currentDeadline } from '../db/deadline-scope.ts';
import { AppError } from '../errors/app-error.ts';
import type { Shard, ShardSet } from './shard-set.ts';

/** The shard a writer went to no longer owns the bucket (it moved, or is being moved right now). */
export class BucketNotOwned extends Error {
  override name = 'BucketNotOwned';
  constructor(
    readonly bucket: number,
    readonly shardId: number,
  ) {
    super(`shard ${shardId} does not own bucket ${bucket}`);
  }
}

/**
 * Locks the bucket's ownership row on this shard for the rest of the transaction (key share: writers do not
 * block each other, a rebalance's delete waits for them and then fences them out).
 */
export async function lockBucket(tx: TxSql, bucket: number, shardId: number): Promise<void> {
  const rows = await tx`select 1 from shard.owned_buckets where bucket = ${bucket} for key share`;
  if (rows.length === 0) throw new BucketNotOwned(bucket, shardId);
}

export async function ownsBucket(sql: Sql | TxSql, bucket: number): Promise<boolean> {
  const [row] = await sql<
    { owned: boolean }[]
  >`select exists (select 1 from shard.owned_buckets where bucket = ${bucket}) as owned`;
  return row!.owned;
}

export interface RoutingOptions {
  /** How long a request keeps looking for a moving bucket's new shard before it answers 503. */
  movingWaitMs?: number;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `fn` in a transaction on the shard that owns `bucket`, holding the bucket's ownership for the whole
 * transaction. If the shard turns out not to own it (a rebalance moved it or is fencing it), reloads the map
 * and tries the new owner, for up to `movingWaitMs` (then SHARD.MOVING, 503).
 * @example const note = await inBucket(shards, bucket, { label: 'notes.create' }, (tx) => insertNote(tx, ...));
 */
export async function inBucket<T>(
  shards: ShardSet,
  bucket: number,
  txOptions: TransactionOptions,
  fn: (tx: TxSql, shard: Shard) => Promise<T>,
  options: RoutingOptions = {},
): Promise<T> {
  return retryWhileMoving(shards, bucket, options, (shard) =>
    shard.transaction(txOptions, async (tx) => {
      await lockBucket(tx, bucket, shard.id);
      return fn(tx, shard);
    }),
  );
}

/**
 * A read on the shard owning `bucket`. `undefined` from a shard that no longer owns the bucket means "look
 * elsewhere", not "absent": the map is reloaded and the read goes to the new owner.
 */
export async function readBucket<T>(
  shards: ShardSet,
  bucket: number,
  fn: (sql: Sql, shard: Shard) => Promise<T | undefined>,
  options: RoutingOptions = {},
): Promise<T | undefined> {
  return retryWhileMoving(shards, bucket, options, async (shard) => {
    const found = await fn(shard.sql, shard);
    if (found !== undefined) return found;
    if (!(await ownsBucket(shard.sql, bucket))) throw new BucketNotOwned(bucket, shard.id);
    return undefined;
  });
}

async function retryWhileMoving<T>(
  shards: ShardSet,
  bucket: number,
  options: RoutingOptions,
  attempt: (shard: Shard) => Promise<T>,
): Promise<T> {
  return whileMoving(shards, bucket, options, () => attempt(shards.ofBucket(bucket)));
}

/**
 * The one retry-while-moving policy of sharded work: runs `attempt`, and while it fails with BucketNotOwned
 * (the bucket moved, or is being fenced for a move), reloads the map and tries again after a backoff (5 ms
 * doubling to 100 ms), until `movingWaitMs` (default 5 s) or the current deadline, whichever is first. Then
 * SHARD.MOVING (503, Retry-After): a moving bucket never answers 500.
 * @example return whileMoving(shards, bucket, {}, () => transferOnce(id, to));
 */
export async function whileMoving<T>(
  shards: ShardSet,
  bucket: number,
  options: RoutingOptions,
  attempt: () => Promise<T>,
): Promise<T> {
  const waitUntil = Math.min(
    Date.now() + (options.movingWaitMs ?? 5000),
    currentDeadline() ?? Number.POSITIVE_INFINITY,
  );
  for (let round = 0; ; round++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof BucketNotOwned)) throw error;
      const backoff = Math.min(5 * 2 ** round, 100);
      if (Date.now() + backoff >= waitUntil) {
        throw new AppError('SHARD.MOVING', `bucket ${error.bucket} is moving between shards; try again`, {
          cause: error,
          details: { bucket: error.bucket },
        });
      }
      await pause(backoff);
      await shards.refreshMap();
    }
  }
}
