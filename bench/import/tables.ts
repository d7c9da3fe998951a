import type { Sql } from '../../src/platform/db/connect.ts';

/** Every method imports into an order with this id, created fresh (the tables are emptied before each run). */
export const BENCH_ORDER_ID = 1;

/**
 * Autovacuum off on the two tables: the benchmark empties and vacuums them itself, and an autovacuum waking
 * up after one method's million rows would only slow the next one down.
 */
export async function disableAutovacuum(sql: Sql): Promise<void> {
  await sql`alter table orders.order_items set (autovacuum_enabled = false)`;
  await sql`alter table orders.orders set (autovacuum_enabled = false)`;
}

/**
 * Puts the tables back to the same start for every run: empty, vacuumed and analyzed, with the dirty pages of
 * the last run written out (checkpoint) so its writes are not paid for during the next; then a fresh order.
 */
export async function resetForRun(sql: Sql): Promise<void> {
  await sql`truncate orders.order_items, orders.orders`;
  await sql`vacuum analyze orders.order_items, orders.orders`;
  // Needs superuser or pg_checkpoint; on a DATABASE_URL without either the runs simply start without it.
  await sql`checkpoint`.catch(() => {});
  await sql`insert into orders.orders (id, customer_id, status, total_amount) values (${BENCH_ORDER_ID}, 1, 'pending', 0)`;
}

/** Fails unless the order holds exactly `rows` items (and, when given, the expected total). */
export async function verifyImported(sql: Sql, rows: number, expectedTotal?: string): Promise<void> {
  const [row] = await sql<{ items: number; total: string }[]>`
    select (select count(*)::int from orders.order_items where order_id = o.id) as items, o.total_amount as total
      from orders.orders o where o.id = ${BENCH_ORDER_ID}`;
  if (row?.items !== rows) throw new Error(`the order holds ${row?.items ?? 'no'} items, expected ${rows}`);
  if (expectedTotal !== undefined && row.total !== expectedTotal)
    throw new Error(`the order's total is ${row.total}, expected ${expectedTotal}`);
}
