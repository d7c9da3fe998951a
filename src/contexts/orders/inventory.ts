import type { TxSql } from '../../platform/db/connect.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import type { ShardSet } from '../../platform/sharding/shard-set.ts';
import {
  hasReservations,
  insertReservations,
  releaseReservations,
  takeStock,
  upsertStock,
  type StockWanted,
} from './inventory-repository.ts';
import type { NewOrderItem } from './order.ts';

/**
 * Stock is kept per shard: each shard stocks its own customers, so a checkout reserves on its customer's shard,
 * inside the transaction that holds the customer's bucket.
 */

/** The items' quantities summed per product. */
function wantedOf(items: readonly NewOrderItem[]): StockWanted {
  const wanted = new Map<number, number>();
  for (const item of items) wanted.set(item.productId, (wanted.get(item.productId) ?? 0) + item.quantity);
  return { productIds: [...wanted.keys()], quantities: [...wanted.values()] };
}

/**
 * Reserves the items' stock for a saga, all or nothing: STOCK.INSUFFICIENT names the products short of stock.
 * Reserving again for the same saga does nothing (a resumed saga repeats its step).
 */
export async function reserveStock(
  tx: TxSql,
  sagaId: string,
  bucket: number,
  items: readonly NewOrderItem[],
): Promise<void> {
  const wanted = wantedOf(items);
  if (await hasReservations(tx, sagaId)) return; // reserved by an earlier run of this step
  const taken = await takeStock(tx, wanted);
  if (taken.length !== wanted.productIds.length) {
    const short = wanted.productIds.filter((p) => !taken.includes(p));
    throw new AppError('STOCK.INSUFFICIENT', `not enough stock for product(s) ${short.join(', ')}`, {
      details: { productIds: short },
    });
  }
  await insertReservations(tx, sagaId, bucket, wanted);
}

/** Gives back what the saga reserved (nothing when it reserved nothing). */
export async function releaseStock(tx: TxSql, sagaId: string): Promise<void> {
  await releaseReservations(tx, sagaId);
}

/** Sets a product's stock on every shard (each shard stocks its own customers). */
export async function setStock(shards: ShardSet, productId: number, available: number): Promise<void> {
  await Promise.all(shards.all().map((shard) => upsertStock(shard.sql, productId, available)));
}
