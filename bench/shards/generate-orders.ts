import type { Sql } from '../../src/platform/db/connect.ts';

/**
 * An order's generated items, all computed from its sequence number, so the orders' totals and the items
 * themselves come from the same expressions: 1 to 4 items (2.5 on average), products 1..5000, quantities 1..3,
 * prices 1.00..99.99.
 */
const item = {
  count: (seq: string) => `(1 + (${seq}) % 4)::int`,
  product: (seq: string, k: string) => `1 + ((${seq}) * 13 + ${k} * 7) % 5000`,
  quantity: (seq: string, k: string) => `(1 + ((${seq}) + ${k}) % 3)::int`,
  price: (seq: string, k: string) => `((((${seq}) * 31 + ${k} * 17) % 9900 + 100) / 100.0)::numeric(10,2)`,
};

/** Statuses by sequence number: 10% pending, 20% processing, 60% completed, 10% cancelled. */
const STATUS_OF_SEQ = `case when s.seq % 20 < 2 then 'pending' when s.seq % 20 < 6 then 'processing'
  when s.seq % 20 < 18 then 'completed' else 'cancelled' end`;

export interface GeneratedShard {
  shardId: number;
  customers: number;
  orders: number;
  items: number;
}

/**
 * Fills one empty shard with `orders` orders in a few set-based statements. Its customers are the ids in
 * 1..customerIds whose bucket (orders.bucket_of) this shard owns per shard.owned_buckets, which openShardSet
 * wrote from the catalog's map; orders go to them round robin. Ids are minted as stratum mints them:
 * (nextval('orders.order_seq') * 64 + shard id) * 1024 + bucket. Then VACUUM ANALYZE, so the timed reads find
 * planner statistics and a visibility map, not hint bits to set.
 * @example await generateShardOrders(sql, 0, 250_000, 100_000) // { shardId: 0, customers: 25_012, orders: 250_000, items: 625_000 }
 */
export async function generateShardOrders(
  sql: Sql,
  shardId: number,
  orders: number,
  customerIds: number,
): Promise<GeneratedShard> {
  const [info] = await sql<{ shard_id: number; n: number }[]>`
    select shard_id, (select count(*)::int from orders.orders) as n from shard.info`;
  if (info?.shard_id !== shardId)
    throw new Error(`the database of shard ${shardId} is stamped as shard ${info?.shard_id}`);
  if (info.n !== 0) throw new Error(`shard ${shardId} already holds ${info.n} orders`);

  await sql`drop table if exists bench_customers`;
  await sql`create unlogged table bench_customers as
    select (row_number() over (order by c) - 1)::int as n, c as customer_id, orders.bucket_of(c) as bucket
    from generate_series(1, ${customerIds}::bigint) c
    where orders.bucket_of(c) in (select bucket from shard.owned_buckets)`;
  const [{ customers }] = await sql<[{ customers: number }]>`select count(*)::int as customers from bench_customers`;
  if (customers === 0)
    throw new Error(`none of the customer ids 1..${customerIds} falls into a bucket of shard ${shardId}`);

  await sql.unsafe(
    `
    insert into orders.orders (id, customer_id, bucket, status, total_amount, created_at, updated_at)
    select (s.seq * 64 + $1) * 1024 + c.bucket, c.customer_id, c.bucket, ${STATUS_OF_SEQ}, t.total,
           timestamptz '2026-01-01 00:00:00+00' + s.seq * interval '10 seconds',
           timestamptz '2026-01-01 00:00:00+00' + s.seq * interval '10 seconds'
    from (select g, nextval('orders.order_seq') as seq from generate_series(0, $2::int - 1) g) s
    join bench_customers c on c.n = s.g % $3::int
    cross join lateral (
      select sum(${item.quantity('s.seq', 'k')} * ${item.price('s.seq', 'k')}) as total from generate_series(1, ${item.count('s.seq')}) k
    ) t`,
    [shardId, orders, customers],
  );
  // id >> 16 is the sequence number: the shard id and the bucket fill the low 6 + 10 bits.
  const inserted = await sql.unsafe(`
    insert into orders.order_items (order_id, product_id, quantity, price)
    select o.id, ${item.product('o.seq', 'k')}, ${item.quantity('o.seq', 'k')}, ${item.price('o.seq', 'k')}
    from (select id, id >> 16 as seq from orders.orders) o
    cross join lateral generate_series(1, ${item.count('o.seq')}) k`);
  await sql`drop table bench_customers`;
  await sql`vacuum (analyze) orders.orders, orders.order_items`;
  return { shardId, customers, orders, items: inserted.count };
}

/**
 * Checks a shard's generated data as stratum would see it: the expected number of orders, every order in a
 * bucket this shard owns and equal to its customer's bucket, every total the sum of its items.
 */
export async function checkShardOrders(sql: Sql, shardId: number, orders: number): Promise<void> {
  const [row] = await sql<{ orders: number; misplaced: number; wrong_totals: number }[]>`
    select count(*)::int as orders,
           count(*) filter (where o.bucket <> orders.bucket_of(o.customer_id) or o.bucket not in (select bucket from shard.owned_buckets))::int as misplaced,
           count(*) filter (where o.total_amount <> (select coalesce(sum(i.quantity * i.price), 0) from orders.order_items i where i.order_id = o.id))::int as wrong_totals
    from orders.orders o`;
  if (row!.orders !== orders || row!.misplaced !== 0 || row!.wrong_totals !== 0) {
    throw new Error(
      `shard ${shardId}: ${row!.orders} orders (expected ${orders}), ${row!.misplaced} outside its buckets, ${row!.wrong_totals} with a total that is not the sum of their items`,
    );
  }
}
