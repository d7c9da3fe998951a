import type { Sql, TxSql } from '../../platform/db/connect.ts';

/** The orders context's statements on a shard's inventory and stock_reservations tables, one named function each. */

/** Quantities wanted per product: `productIds[i]` wants `quantities[i]`, each product once. */
export interface StockWanted {
  productIds: number[];
  quantities: number[];
}

/** Whether the saga holds reservations on this shard (its reserve step ran before). */
export async function hasReservations(tx: TxSql, sagaId: string): Promise<boolean> {
  const [done] = await tx`select 1 from orders.stock_reservations where saga_id = ${sagaId} limit 1`;
  return done !== undefined;
}

/** Takes the wanted quantities from stock where enough is available, in one statement; the products taken from. */
export async function takeStock(tx: TxSql, wanted: StockWanted): Promise<number[]> {
  const taken = await tx<{ product_id: string }[]>`
    update orders.inventory i set available = available - w.quantity
    from unnest(${wanted.productIds}::bigint[], ${wanted.quantities}::int[]) as w(product_id, quantity)
    where i.product_id = w.product_id and i.available >= w.quantity
    returning i.product_id`;
  return taken.map((t) => Number(t.product_id));
}

/** Records what the saga took, so that its compensation gives it back (and a repeated step takes nothing). */
export async function insertReservations(
  tx: TxSql,
  sagaId: string,
  bucket: number,
  wanted: StockWanted,
): Promise<void> {
  await tx`insert into orders.stock_reservations (saga_id, product_id, quantity, bucket)
    select ${sagaId}, p, q, ${bucket} from unnest(${wanted.productIds}::bigint[], ${wanted.quantities}::int[]) as t(p, q)`;
}

/** Deletes the saga's reservations and puts their quantities back in stock, in one statement (nothing when there are none). */
export async function releaseReservations(tx: TxSql, sagaId: string): Promise<void> {
  await tx`with released as (
      delete from orders.stock_reservations where saga_id = ${sagaId} returning product_id, quantity)
    update orders.inventory i set available = available + r.quantity from released r where i.product_id = r.product_id`;
}

/** Sets a product's stock on one shard. */
export async function upsertStock(sql: Sql, productId: number, available: number): Promise<void> {
  await sql`
    insert into orders.inventory (product_id, available) values (${productId}, ${available})
    on conflict (product_id) do update set available = excluded.available`;
}
