import type { TxSql } from '../../platform/db/connect.ts';
import type { BucketMover } from '../../platform/sharding/rebalance.ts';

interface OrderRow {
  id: string;
  bucket: number;
  customer_id: string;
  saga_id: string | null;
  status: string;
  total_amount: string;
  notes: string | null;
  created_at: Date;
  updated_at: Date;
}
interface ItemRow {
  order_id: string;
  product_id: string;
  quantity: number;
  price: string;
}

/** Copies the given orders (or all of the bucket's) with their items; item ids are minted anew by the target. */
async function copyOrders(from: TxSql, into: TxSql, buckets: number[], ids?: string[]): Promise<number> {
  const orders = ids
    ? await from<
        OrderRow[]
      >`select id, bucket, customer_id, saga_id, status, total_amount::text, notes, created_at, updated_at from orders.orders where bucket = any(${buckets}::int[]) and id = any(${ids}::bigint[])`
    : await from<
        OrderRow[]
      >`select id, bucket, customer_id, saga_id, status, total_amount::text, notes, created_at, updated_at from orders.orders where bucket = any(${buckets}::int[])`;
  if (orders.length === 0) return 0;
  const orderIds = orders.map((o) => o.id);
  const items = await from<ItemRow[]>`select order_id, product_id, quantity, price::text from orders.order_items
    where order_id = any(${orderIds}::bigint[]) order by order_id, id`;
  await into`insert into orders.orders (id, customer_id, bucket, saga_id, status, total_amount, notes, created_at, updated_at)
    select id, customer_id, bucket, saga_id, status, total_amount, notes, created_at, updated_at
    from unnest(${orderIds}::bigint[], ${orders.map((o) => o.bucket)}::int[], ${orders.map((o) => o.customer_id)}::bigint[], ${orders.map((o) => o.saga_id)}::uuid[], ${orders.map((o) => o.status)}::text[],
                ${orders.map((o) => o.total_amount)}::numeric[], ${orders.map((o) => o.notes)}::text[], ${orders.map((o) => o.created_at.toISOString())}::timestamptz[], ${orders.map((o) => o.updated_at.toISOString())}::timestamptz[])
      as t(id, bucket, customer_id, saga_id, status, total_amount, notes, created_at, updated_at)`;
  if (items.length > 0) {
    await into`insert into orders.order_items (order_id, product_id, quantity, price)
      select order_id, product_id, quantity, price
      from unnest(${items.map((i) => i.order_id)}::bigint[], ${items.map((i) => i.product_id)}::bigint[], ${items.map((i) => i.quantity)}::int[], ${items.map((i) => i.price)}::numeric[])
        with ordinality as t(order_id, product_id, quantity, price, n) order by n`;
  }
  return orders.length + items.length;
}

/** The bucket's forwarding rows and stock reservations: few, copied whole each time. */
async function copySmallTables(from: TxSql, into: TxSql, buckets: number[]): Promise<number> {
  await into`delete from orders.forwarded_orders where bucket = any(${buckets}::int[])`;
  await into`delete from orders.stock_reservations where bucket = any(${buckets}::int[])`;
  const forwards = await from<{ old_id: string; new_id: string; bucket: number; moved_at: Date }[]>`
    select old_id, new_id, bucket, moved_at from orders.forwarded_orders where bucket = any(${buckets}::int[])`;
  const reservations = await from<
    { saga_id: string; product_id: string; quantity: number; bucket: number; reserved_at: Date }[]
  >`
    select saga_id, product_id, quantity, bucket, reserved_at from orders.stock_reservations where bucket = any(${buckets}::int[])`;
  if (forwards.length > 0) {
    await into`insert into orders.forwarded_orders (old_id, new_id, bucket, moved_at)
      select o, n, b, m from unnest(${forwards.map((f) => f.old_id)}::bigint[], ${forwards.map((f) => f.new_id)}::bigint[], ${forwards.map((f) => f.bucket)}::int[],
        ${forwards.map((f) => f.moved_at.toISOString())}::timestamptz[]) as t(o, n, b, m)`;
  }
  if (reservations.length > 0) {
    await into`insert into orders.stock_reservations (saga_id, product_id, quantity, bucket, reserved_at)
      select s, p, q, b, r from unnest(${reservations.map((r) => r.saga_id)}::uuid[], ${reservations.map((r) => r.product_id)}::bigint[],
        ${reservations.map((r) => r.quantity)}::int[], ${reservations.map((r) => r.bucket)}::int[], ${reservations.map((r) => r.reserved_at.toISOString())}::timestamptz[]) as t(s, p, q, b, r)`;
  }
  return forwards.length + reservations.length;
}

/**
 * How the orders context's buckets move between shards: orders with their items (every change to an order's
 * items also updates the order row, so the order's xmin tells whether it changed since a snapshot), forwarding
 * rows and stock reservations. Inventory is per shard, not per bucket, and stays.
 */
export const ordersBucketMover: BucketMover = {
  async copyAll(from, into, buckets) {
    return (await copyOrders(from, into, buckets)) + (await copySmallTables(from, into, buckets));
  },

  async copyDelta(from, into, buckets, snapshot) {
    // Rows written by transactions the snapshot did not see (the row's xmin widened to a full xid8).
    const changed = (
      await from<{ id: string }[]>`
      with now as (select pg_current_xact_id()::text::numeric as cur)
      select o.id::text from orders.orders o, now
      where o.bucket = any(${buckets}::int[])
        and not pg_visible_in_snapshot((
          case when o.xmin::text::numeric > mod(cur, 4294967296)
               then (floor(cur / 4294967296) - 1) * 4294967296 + o.xmin::text::numeric
               else floor(cur / 4294967296) * 4294967296 + o.xmin::text::numeric end)::text::xid8, ${snapshot}::pg_snapshot)`
    ).map((r) => r.id);
    const here = new Set(
      (await from<{ id: string }[]>`select id::text from orders.orders where bucket = any(${buckets}::int[])`).map(
        (r) => r.id,
      ),
    );
    const copiedIds = (
      await into<{ id: string }[]>`select id::text from orders.orders where bucket = any(${buckets}::int[])`
    ).map((r) => r.id);
    const gone = copiedIds.filter((id) => !here.has(id));
    const stale = [...new Set([...changed, ...gone])];
    if (stale.length > 0) await into`delete from orders.orders where id = any(${stale}::bigint[])`;
    const rows = changed.length > 0 ? await copyOrders(from, into, buckets, changed) : 0;
    return rows + (await copySmallTables(from, into, buckets));
  },

  async bucketsWithRows(sql) {
    // A loose index scan over orders_bucket_idx: one probe per bucket present, not a pass over every order.
    const rows = await sql<{ bucket: number }[]>`
      with recursive b(bucket) as (
        (select bucket from orders.orders order by bucket limit 1)
        union all
        select (select o.bucket from orders.orders o where o.bucket > b.bucket order by o.bucket limit 1) from b where b.bucket is not null
      )
      select bucket from b where bucket is not null`;
    return rows.map((r) => r.bucket);
  },

  async clear(tx, buckets) {
    await tx`delete from orders.forwarded_orders where bucket = any(${buckets}::int[])`;
    await tx`delete from orders.stock_reservations where bucket = any(${buckets}::int[])`;
    const gone = await tx`delete from orders.orders where bucket = any(${buckets}::int[])`;
    return gone.count;
  },
};
