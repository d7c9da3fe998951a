import type { Db, TxSql } from '../../platform/db/connect.ts';
import type { NewOrder, Order, OrderStats, OrderStatus } from './order.ts';
import { ORDER_STATUSES } from './order.ts';

/** The JSON shape of an order, built by PostgreSQL; `o` is an orders row, `items` a json array. */
const ORDER_JSON = `json_build_object(
    'id', o.id, 'customerId', o.customer_id, 'status', o.status, 'totalAmount', o.total_amount::text,
    'notes', o.notes, 'createdAt', o.created_at, 'updatedAt', o.updated_at`;

const ITEMS_OF_O = `coalesce((
    select json_agg(json_build_object('id', i.id, 'productId', i.product_id, 'quantity', i.quantity, 'price', i.price::text) order by i.id)
    from orders.order_items i where i.order_id = o.id), '[]'::json)`;

interface OrderJson extends Omit<Order, 'createdAt' | 'updatedAt'> { createdAt: string; updatedAt: string }

function orderJsonToOrder(row: OrderJson): Order {
  return { ...row, createdAt: new Date(row.createdAt).toISOString(), updatedAt: new Date(row.updatedAt).toISOString() };
}

/**
 * Writes the order and all its items in ONE statement (one round trip): the items arrive as arrays and are
 * unnested; the total is computed by PostgreSQL from the same arrays.
 */
export async function insertOrderWithItems(tx: TxSql, order: NewOrder): Promise<Order> {
  const productIds = order.items.map((i) => i.productId);
  const quantities = order.items.map((i) => i.quantity);
  const prices = order.items.map((i) => i.price);
  const [row] = await tx<{ order: OrderJson }[]>`
    with lines as (
      select * from unnest(${productIds}::bigint[], ${quantities}::int[], ${prices}::numeric[]) with ordinality as t(product_id, quantity, price, n)
    ), o as (
      insert into orders.orders (customer_id, status, total_amount, notes)
      select ${order.customerId}, 'pending', coalesce(sum(quantity * price), 0), ${order.notes ?? null} from lines
      returning *
    ), items as (
      insert into orders.order_items (order_id, product_id, quantity, price)
      select o.id, lines.product_id, lines.quantity, lines.price from o, lines order by lines.n
      returning id, product_id, quantity, price
    )
    select ${tx.unsafe(ORDER_JSON)},
      'items', (select json_agg(json_build_object('id', id, 'productId', product_id, 'quantity', quantity, 'price', price::text) order by id) from items)
    ) as order from o`;
  return orderJsonToOrder(row!.order);
}

/** The order with its items as one JSON aggregate, from one query. */
export async function findOrder(db: Db, id: number): Promise<Order | undefined> {
  const [row] = await db<{ order: OrderJson }[]>`
    select ${db.unsafe(ORDER_JSON)}, 'items', ${db.unsafe(ITEMS_OF_O)}) as order from orders.orders o where o.id = ${id}`;
  return row ? orderJsonToOrder(row.order) : undefined;
}

export type TransitionResult =
  | { kind: 'changed'; order: Order; from: OrderStatus }
  | { kind: 'missing' }
  | { kind: 'refused'; current: OrderStatus };

/**
 * Moves an order to `to` only if its current status is one of `from`: a compare-and-set under the row lock,
 * so of two concurrent transitions only those valid in some serial order succeed.
 */
export async function transitionOrder(tx: TxSql, id: number, from: OrderStatus[], to: OrderStatus): Promise<TransitionResult> {
  const [row] = await tx<{ order: OrderJson | null; previous: OrderStatus | null; current: OrderStatus | null }[]>`
    with before as (
      select id, status from orders.orders where id = ${id} for update
    ), changed as (
      update orders.orders o set status = ${to}, updated_at = now()
      from before where o.id = before.id and before.status = any(${from}::text[])
      returning o.*
    )
    select (select ${tx.unsafe(ORDER_JSON)}, 'items', ${tx.unsafe(ITEMS_OF_O)}) from changed o) as order,
           (select status from before) as previous,
           (select status from before) as current`;
  if (!row || row.current === null) return { kind: 'missing' };
  if (!row.order) return { kind: 'refused', current: row.current };
  return { kind: 'changed', order: orderJsonToOrder(row.order), from: row.previous! };
}

/** Deletes the order (its items go by cascade); false when there was none. */
export async function deleteOrder(tx: TxSql, id: number): Promise<boolean> {
  const rows = await tx`delete from orders.orders where id = ${id} returning id`;
  return rows.length > 0;
}

export interface OrderPageQuery {
  customerId?: number;
  status?: OrderStatus;
  /** Only orders with a smaller id (the last id of the previous page). */
  beforeId?: number;
  limit: number;
}

/**
 * Newest first by id; keyset pagination (no OFFSET), served by (customer_id, id desc) or (status, id desc).
 * Each combination of filters is its own statement, so each gets a plan that uses its index.
 */
export async function listOrders(db: Db, query: OrderPageQuery): Promise<Order[]> {
  const conditions = [
    query.customerId !== undefined ? db`o.customer_id = ${query.customerId}` : undefined,
    query.status !== undefined ? db`o.status = ${query.status}` : undefined,
    query.beforeId !== undefined ? db`o.id < ${query.beforeId}` : undefined,
  ].filter((c) => c !== undefined);
  const where = conditions.length === 0 ? db`` : conditions.slice(1).reduce((all, c) => db`${all} and ${c}`, db`where ${conditions[0]!}`);
  const rows = await db<{ order: OrderJson }[]>`
    select ${db.unsafe(ORDER_JSON)}, 'items', ${db.unsafe(ITEMS_OF_O)}) as order
    from orders.orders o
    ${where}
    order by o.id desc
    limit ${query.limit}`;
  return rows.map((r) => orderJsonToOrder(r.order));
}

export async function orderStats(db: Db): Promise<OrderStats> {
  const rows = await db<{ status: OrderStatus; n: number }[]>`select status, count(*)::int as n from orders.orders group by status`;
  const byStatus = Object.fromEntries(ORDER_STATUSES.map((s) => [s, 0])) as Record<OrderStatus, number>;
  for (const r of rows) byStatus[r.status] = r.n;
  return { byStatus, total: rows.reduce((sum, r) => sum + r.n, 0) };
}
