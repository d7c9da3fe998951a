import type { Sql, TxSql } from '../db/connect.ts';
import type { TransactionOptions } from '../db/transaction.ts';
import { AppError } from '../errors/app-error.ts';
import type { Shard, ShardSet } from './shard-set.ts';

/** The shard a writer went to no longer owns the bucket (it moved, or is being moved right now). */
export class BucketNotOwned extends Error {
  override name = 'BucketNotOwned';
  constructor(readonly bucket: number, readonly shardId: number) {
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
  const [row] = await sql<{ owned: boolean }[]>`select exists (select 1 from shard.owned_buckets where bucket = ${bucket}) as owned`;
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
 * @example const order = await inBucket(shards, bucket, { label: 'orders.create' }, (tx) => insertOrder(tx, ...));
 */
export async function inBucket<T>(
  shards: ShardSet, bucket: number, txOptions: TransactionOptions,
  fn: (tx: TxSql, shard: Shard) => Promise<T>, options: RoutingOptions = {},
): Promise<T> {
  return retryWhileMoving(shards, bucket, options, (shard) =>
    shard.transaction(txOptions, async (tx) => {
      await lockBucket(tx, bucket, shard.id);
      return fn(tx, shard);
    }));
}

/**
 * A read on the shard owning `bucket`. `undefined` from a shard that no longer owns the bucket means "look
 * elsewhere", not "absent": the map is reloaded and the read goes to the new owner.
 */
export async function readBucket<T>(
  shards: ShardSet, bucket: number, fn: (sql: Sql, shard: Shard) => Promise<T | undefined>, options: RoutingOptions = {},
): Promise<T | undefined> {
  return retryWhileMoving(shards, bucket, options, async (shard) => {
    const found = await fn(shard.sql, shard);
    if (found !== undefined) return found;
    if (!(await ownsBucket(shard.sql, bucket))) throw new BucketNotOwned(bucket, shard.id);
    return undefined;
  });
}

async function retryWhileMoving<T>(shards: ShardSet, bucket: number, options: RoutingOptions, attempt: (shard: Shard) => Promise<T>): Promise<T> {
  const waitUntil = Date.now() + (options.movingWaitMs ?? 5000);
  for (let round = 0; ; round++) {
    const shard = shards.ofBucket(bucket);
    try {
      return await attempt(shard);
    } catch (error) {
      if (!(error instanceof BucketNotOwned)) throw error;
      if (Date.now() >= waitUntil) {
        throw new AppError('SHARD.MOVING', `bucket ${bucket} is moving between shards; try again`, { cause: error, details: { bucket } });
      }
      await pause(Math.min(5 * 2 ** round, 100));
      await shards.refreshMap();
    }
  }
}
