import type { Db, TxSql } from '../../platform/db/connect.ts';
import type { NewOrder, Order, OrderStatus } from './order.ts';

/** The orders context's statements on a shard's orders, order_items and forwarded_orders tables, one named function each. */

/** A timestamp as JavaScript's toISOString() writes it (UTC, milliseconds, truncated as Date truncates). */
const isoMillis = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * An order leaves PostgreSQL as one `json` value in the shape of the API's answer (postgres.js parses it; the
 * route's response schema writes it out): ids and quantities are numbers, money is text ("12.50"), timestamps
 * are already ISO strings. ORDER_FIELDS are its fields but the items, for json_build_object; `o` is an orders row.
 */
const ORDER_FIELDS = `'id', o.id, 'customerId', o.customer_id, 'status', o.status, 'totalAmount', o.total_amount::text,
    'notes', o.notes, 'createdAt', ${isoMillis('o.created_at')}, 'updatedAt', ${isoMillis('o.updated_at')}`;

/** An item as json; `i` is an order_items row. */
const ITEM_JSON = `json_build_object('id', i.id, 'productId', i.product_id, 'quantity', i.quantity, 'price', i.price::text)`;

/** The order `o` with its items, as one json value. */
const ORDER_JSON = `json_build_object(${ORDER_FIELDS}, 'items', coalesce((
    select json_agg(${ITEM_JSON} order by i.id) from orders.order_items i where i.order_id = o.id), '[]'::json))`;

/** Where a new order goes: its bucket (from the customer), and the saga creating it, if any. */
export interface OrderPlacement {
  bucket: number;
  /** A saga's order is created once per saga: a second insert with the same saga id inserts nothing. */
  sagaId?: string;
}

/**
 * Writes the order and all its items in ONE statement (one round trip): the items arrive as arrays and are
 * unnested; the total is computed by PostgreSQL from the same arrays. The id is minted on the shard:
 * (sequence * 64 + shard id) * 1024 + bucket. Undefined only when the saga's order already exists.
 */
export async function insertOrderWithItems(
  tx: TxSql,
  order: NewOrder,
  placement: OrderPlacement,
): Promise<Order | undefined> {
  const productIds = order.items.map((i) => i.productId);
  const quantities = order.items.map((i) => i.quantity);
  const prices = order.items.map((i) => i.price);
  const [row] = await tx<{ order: Order }[]>`
    with lines as (
      select * from unnest(${productIds}::bigint[], ${quantities}::int[], ${prices}::numeric[]) with ordinality as t(product_id, quantity, price, n)
    ), o as (
      insert into orders.orders (id, customer_id, bucket, saga_id, status, total_amount, notes)
      select (nextval('orders.order_seq') * 64 + (select shard_id from shard.info)) * 1024 + ${placement.bucket},
             ${order.customerId}, ${placement.bucket}, ${placement.sagaId ?? null}, 'pending', coalesce(sum(quantity * price), 0), ${order.notes ?? null}
      from lines
      on conflict (saga_id) do nothing
      returning *
    ), i as (
      insert into orders.order_items (order_id, product_id, quantity, price)
      select o.id, lines.product_id, lines.quantity, lines.price from o, lines order by lines.n
      returning id, product_id, quantity, price
    )
    select json_build_object(${tx.unsafe(ORDER_FIELDS)}, 'items', (select json_agg(${tx.unsafe(ITEM_JSON)} order by i.id) from i)) as order from o`;
  return row ? row.order : undefined;
}

/** The order a saga created, if it did. */
export async function findOrderOfSaga(db: Db, sagaId: string): Promise<Order | undefined> {
  const [row] = await db<{ order: Order }[]>`
    select ${db.unsafe(ORDER_JSON)} as order from orders.orders o where o.saga_id = ${sagaId}`;
  return row ? row.order : undefined;
}

/** The order with its items as one JSON aggregate, from one query. */
export async function findOrder(db: Db, id: number): Promise<Order | undefined> {
  const [row] = await db<{ order: Order }[]>`
    select ${db.unsafe(ORDER_JSON)} as order from orders.orders o where o.id = ${id}`;
  return row ? row.order : undefined;
}

export type TransitionResult =
  | { kind: 'changed'; order: Order; from: OrderStatus }
  | { kind: 'missing' }
  | { kind: 'refused'; current: OrderStatus };

/**
 * Moves an order to `to` only if its current status is one of `from`: a compare-and-set under the row lock,
 * so of two concurrent transitions only those valid in some serial order succeed.
 */
export async function transitionOrder(
  tx: TxSql,
  id: number,
  from: OrderStatus[],
  to: OrderStatus,
): Promise<TransitionResult> {
  const [row] = await tx<{ order: Order | null; previous: OrderStatus | null; current: OrderStatus | null }[]>`
    with before as (
      select id, status from orders.orders where id = ${id} for update
    ), changed as (
      update orders.orders o set status = ${to}, updated_at = now()
      from before where o.id = before.id and before.status = any(${from}::text[])
      returning o.*
    )
    select (select ${tx.unsafe(ORDER_JSON)} from changed o) as order,
           (select status from before) as previous,
           (select status from before) as current`;
  if (!row || row.current === null) return { kind: 'missing' };
  if (!row.order) return { kind: 'refused', current: row.current };
  return { kind: 'changed', order: row.order, from: row.previous! };
}

/** Deletes an order (its items go by cascade); the deleted order's customer, or undefined when there was none. */
export async function deleteOrder(tx: TxSql, id: number): Promise<{ customerId: number } | undefined> {
  const [row] = await tx<{ customer_id: string }[]>`delete from orders.orders where id = ${id} returning customer_id`;
  return row ? { customerId: Number(row.customer_id) } : undefined;
}

/** An order's row as a transfer copies it (the items separately, see orderItemRows). */
export interface OrderRow {
  customer_id: string;
  status: OrderStatus;
  total_amount: string;
  notes: string | null;
  created_at: Date;
}

/** Locks the order's row for the rest of the transaction; its row, or undefined when there is no such order. */
export async function lockOrder(tx: TxSql, id: number): Promise<OrderRow | undefined> {
  const [row] = await tx<OrderRow[]>`
    select customer_id, status, total_amount, notes, created_at from orders.orders where id = ${id} for update`;
  return row;
}

/** Inserts a copy of `order` for another customer (the status, total, notes and creation time kept) under a new id minted on this shard. */
export async function insertOrderCopy(tx: TxSql, order: OrderRow, customerId: number, bucket: number): Promise<number> {
  const [created] = await tx<{ id: string }[]>`
    insert into orders.orders (id, customer_id, bucket, status, total_amount, notes, created_at, updated_at)
    values ((nextval('orders.order_seq') * 64 + (select shard_id from shard.info)) * 1024 + ${bucket},
            ${customerId}, ${bucket}, ${order.status}, ${order.total_amount}, ${order.notes}, ${order.created_at}, now())
    returning id`;
  return Number(created!.id);
}

export interface OrderItemRow {
  product_id: string;
  quantity: number;
  price: string;
}

/** The order's items in their order (by id). */
export async function orderItemRows(tx: TxSql, orderId: number): Promise<OrderItemRow[]> {
  return tx<
    OrderItemRow[]
  >`select product_id, quantity, price from orders.order_items where order_id = ${orderId} order by id`;
}

/** Inserts `items` into the order in one statement, in their given order (item ids are minted anew). */
export async function insertItemRows(tx: TxSql, orderId: number, items: readonly OrderItemRow[]): Promise<void> {
  await tx`insert into orders.order_items (order_id, product_id, quantity, price)
    select ${orderId}, p, q, pr from unnest(${items.map((i) => i.product_id)}::bigint[], ${items.map((i) => i.quantity)}::int[], ${items.map((i) => i.price)}::numeric[])
    with ordinality as t(p, q, pr, n) order by n`;
}

/** Records that order `oldId` (of `bucket`) is now `newId`: GET of the old id answers where it went. */
export async function insertForward(tx: TxSql, oldId: number, newId: number, bucket: number): Promise<void> {
  await tx`insert into orders.forwarded_orders (old_id, new_id, bucket) values (${oldId}, ${newId}, ${bucket})`;
}

/** Forwards that led to `oldId` lead to `newId` now (an order transferred again). */
export async function repointForwards(tx: TxSql, oldId: number, newId: number): Promise<void> {
  await tx`update orders.forwarded_orders set new_id = ${newId} where new_id = ${oldId}`;
}

/** The id order `id` was transferred to, if it was. */
export async function findForward(db: Db, id: number): Promise<number | undefined> {
  const [forward] = await db<{ new_id: string }[]>`select new_id from orders.forwarded_orders where old_id = ${id}`;
  return forward ? Number(forward.new_id) : undefined;
}

/** The COPY an item import streams into (the order id is prefixed to each CSV line). */
export const COPY_ORDER_ITEMS =
  'copy orders.order_items (order_id, product_id, quantity, price) from stdin with (format csv)';

/** Sets the order's total to the sum of its items (after an import) and touches updated_at. */
export async function recomputeTotal(tx: TxSql, id: number): Promise<void> {
  await tx`update orders.orders o set total_amount = coalesce((select sum(i.quantity * i.price) from orders.order_items i where i.order_id = o.id), 0),
    updated_at = now() where o.id = ${id}`;
}

export interface OrderPageQuery {
  customerId?: number;
  status?: OrderStatus;
  /** Only orders with a smaller id (the last id of the previous page). */
  beforeId?: number;
  limit: number;
  /** Only the buckets this shard owns (a listing across shards: a bucket being moved is on two shards). */
  ownedOnly?: boolean;
}

function pageConditions(db: Db, query: OrderPageQuery) {
  const conditions = [
    query.customerId !== undefined ? db`o.customer_id = ${query.customerId}` : undefined,
    query.status !== undefined ? db`o.status = ${query.status}` : undefined,
    query.beforeId !== undefined ? db`o.id < ${query.beforeId}` : undefined,
    query.ownedOnly ? db`o.bucket in (select bucket from shard.owned_buckets)` : undefined,
  ].filter((c) => c !== undefined);
  return conditions.length === 0
    ? db``
    : conditions.slice(1).reduce((all, c) => db`${all} and ${c}`, db`where ${conditions[0]!}`);
}

/** A row of shardPageQuery: the order's id, and the order when it was asked for whole. */
export interface PageRow {
  id: string;
  order: Order | null;
}

/**
 * A page of one shard in ONE statement: the ids of up to `limit` orders newest first (keyset pagination, no
 * OFFSET, served by (customer_id, id desc) or (status, id desc)), and for the first `withOrders` of them the
 * order with its items. A listing across shards asks each shard for its whole
 * page of ids but only for about its share of orders: the merge keeps `limit` of all of them, so most whole
 * orders a shard built would be thrown away. Returned unawaited so a caller can cancel it (see abortable()).
 * Each combination of filters is its own statement, so each gets a plan that uses its index.
 */
export function shardPageQuery(db: Db, query: OrderPageQuery, withOrders: number) {
  return db<PageRow[]>`
    select o.id, case when row_number() over (order by o.id desc) <= ${withOrders} then ${db.unsafe(ORDER_JSON)} end as order
    from orders.orders o
    ${pageConditions(db, query)}
    order by o.id desc
    limit ${query.limit}`;
}

/** A page of one shard with every order whole (shardPageQuery with every order asked for). */
export async function listOrders(db: Db, query: OrderPageQuery): Promise<Order[]> {
  return (await shardPageQuery(db, query, query.limit)).map((r) => r.order!);
}

/** The given orders with their items, newest first (one query; cancellable, see abortable()). */
export function ordersByIdsQuery(db: Db, ids: readonly number[]) {
  return db<PageRow[]>`
    select o.id, ${db.unsafe(ORDER_JSON)} as order
    from orders.orders o where o.id = any(${ids as number[]}::bigint[])
    order by o.id desc`;
}

/**
 * Orders by status on one shard, from the per-bucket counters the triggers keep (migration 0005), counting only
 * the buckets the shard owns (cancellable, see abortable()).
 */
export function orderStatsQuery(db: Db) {
  return db<{ status: OrderStatus; n: number }[]>`
    select c.status, sum(c.n)::int as n from orders.status_counts c
    where c.bucket in (select bucket from shard.owned_buckets)
    group by c.status`;
}
