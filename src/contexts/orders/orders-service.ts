import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { currentDeadline } from '../../platform/db/deadline-scope.ts';
import type { Sql, TxSql } from '../../platform/db/connect.ts';
import { AppError, isAppError } from '../../platform/errors/app-error.ts';
import type { FaultPoint } from '../../platform/faults.ts';
import { addToOutbox } from '../../platform/messaging/outbox.ts';
import { createSagaRunner, StepTimedOut, type SagaDefinition } from '../../platform/saga/saga.ts';
import { bucketOfId, bucketOfKey } from '../../platform/sharding/buckets.ts';
import { inBucket, lockBucket, ownsBucket, readBucket, whileMoving } from '../../platform/sharding/routing.ts';
import { mergeDescending, scatter, type Consistency } from '../../platform/sharding/scatter.ts';
import type { Shard, ShardSet } from '../../platform/sharding/shard-set.ts';
import { twoPhaseCommit } from '../../platform/sharding/two-phase.ts';
import { abortable } from '../../platform/db/abortable.ts';
import { idempotent, type IdempotentOutcome } from '../../platform/idempotency/idempotency.ts';
import { importOrderItems, type ImportOptions, type ImportResult } from './import-order-items.ts';
import { ORDER_STATUSES, statusesLeadingTo, type NewOrder, type NewOrderItem, type Order, type OrderStats, type OrderStatus } from './order.ts';
import { deleteOrder, findOrder, findOrderOfSaga, insertOrderWithItems, ordersByIdsQuery, orderStatsQuery, shardPageQuery, transitionOrder, type TransitionResult } from './orders-repository.ts';
import type { PaymentsPort } from './payments.ts';

export interface OrdersServiceDeps {
  shards: ShardSet;
  payments: PaymentsPort;
  /** Deadline of each shard's part of a listing or stats. */
  shardDeadlineMs: number;
  /** Deadline of a transfer's two-phase commit. */
  txDeadlineMs: number;
  importDeadlineMs: number;
  /** How long a running checkout saga stays this process's before another may resume it. */
  sagaLeaseMs?: number;
  fault?: FaultPoint;
  log?: (message: string, error?: unknown) => void;
}

export interface OrderPage {
  /**
   * Each order with its items as JSON text, as its shard built it: a listing passes orders through without
   * parsing and serialising them again (the response is assembled from these texts).
   */
  items: string[];
  /** Shards that did not answer (consistency=partial only). */
  missingShards: number[];
  /** The page's last id when a next page may follow (the cursor). */
  lastId: number | undefined;
}

export type Lookup = { order: Order } | { movedTo: number } | undefined;

interface CheckoutState {
  sagaId: string;
  customerId: number;
  items: NewOrderItem[];
  paymentToken: string;
  orderId?: number;
  totalAmount?: string;
}

export class CheckoutFailed extends Error {
  override name = 'CheckoutFailed';
  constructor(readonly sagaId: string, readonly failedStep: string, readonly compensated: string[], readonly orderId: number | undefined, override readonly cause: unknown) {
    super(`checkout failed at ${failedStep}`);
  }
}

const notFound = (id: number) => new AppError('ORDER.NOT_FOUND', `order ${id} does not exist`, { details: { id } });

/**
 * The orders context over its shards: a customer's orders live on the shard of the customer's bucket, an
 * order's id names its bucket; listings and stats ask every shard at once; a transfer between shards is one
 * two-phase commit; a checkout is a saga.
 */
export function createOrdersService(deps: OrdersServiceDeps) {
  const { shards } = deps;
  const fault = deps.fault ?? (() => {});
  const sagas = createSagaRunner({ sql: shards.catalog, leaseMs: deps.sagaLeaseMs, fault, log: deps.log });

  const checkout: SagaDefinition<CheckoutState> = {
    kind: 'orders.checkout',
    steps: [
      {
        name: 'create-order',
        async run(state) {
          const bucket = bucketOfKey(state.customerId);
          const order = await inBucket(shards, bucket, { label: 'orders.checkout.create' }, async (tx) => {
            const created = await insertOrderWithItems(tx, { customerId: state.customerId, items: state.items }, { bucket, sagaId: state.sagaId });
            if (created) await addToOutbox(tx, { type: 'order.created', key: String(created.customerId), payload: { id: created.id, customerId: created.customerId, totalAmount: created.totalAmount } });
            return created ?? (await findOrderOfSaga(tx, state.sagaId))!;
          });
          return { orderId: order.id, totalAmount: order.totalAmount };
        },
        async compensate(state) {
          const bucket = bucketOfKey(state.customerId);
          await inBucket(shards, bucket, { label: 'orders.checkout.cancel' }, async (tx) => {
            const order = await findOrderOfSaga(tx, state.sagaId);
            if (!order) return;
            const outcome = await transitionOrder(tx, order.id, statusesLeadingTo('cancelled'), 'cancelled');
            if (outcome.kind === 'changed') await addToOutbox(tx, { type: 'order.status_changed', key: String(order.customerId), payload: { id: order.id, from: outcome.from, to: 'cancelled' } });
          });
        },
      },
      {
        name: 'reserve-stock',
        async run(state) {
          const bucket = bucketOfKey(state.customerId);
          const wanted = new Map<number, number>();
          for (const item of state.items) wanted.set(item.productId, (wanted.get(item.productId) ?? 0) + item.quantity);
          await inBucket(shards, bucket, { label: 'orders.checkout.reserve' }, async (tx) => {
            const [done] = await tx`select 1 from orders.stock_reservations where saga_id = ${state.sagaId} limit 1`;
            if (done) return; // reserved by an earlier run of this step
            const products = [...wanted.keys()];
            const quantities = [...wanted.values()];
            const taken = await tx<{ product_id: string }[]>`
              update orders.inventory i set available = available - w.quantity
              from unnest(${products}::bigint[], ${quantities}::int[]) as w(product_id, quantity)
              where i.product_id = w.product_id and i.available >= w.quantity
              returning i.product_id`;
            if (taken.length !== products.length) {
              const short = products.filter((p) => !taken.some((t) => Number(t.product_id) === p));
              throw new AppError('STOCK.INSUFFICIENT', `not enough stock for product(s) ${short.join(', ')}`, { details: { productIds: short } });
            }
            await tx`insert into orders.stock_reservations (saga_id, product_id, quantity, bucket)
              select ${state.sagaId}, p, q, ${bucket} from unnest(${products}::bigint[], ${quantities}::int[]) as t(p, q)`;
          });
        },
        async compensate(state) {
          const bucket = bucketOfKey(state.customerId);
          await inBucket(shards, bucket, { label: 'orders.checkout.release' }, async (tx) => {
            await tx`with released as (
                delete from orders.stock_reservations where saga_id = ${state.sagaId} returning product_id, quantity)
              update orders.inventory i set available = available + r.quantity from released r where i.product_id = r.product_id`;
          });
        },
      },
      {
        name: 'charge-payment',
        timeoutMs: 3000,
        async run(state, signal) {
          await deps.payments.charge({ key: state.sagaId, amount: state.totalAmount!, token: state.paymentToken }, signal);
        },
        async compensate(state) {
          await deps.payments.refund(state.sagaId);
        },
      },
      {
        name: 'mark-processing',
        async run(state) {
          const bucket = bucketOfKey(state.customerId);
          await inBucket(shards, bucket, { label: 'orders.checkout.confirm' }, async (tx) => {
            const outcome = await transitionOrder(tx, state.orderId!, ['pending'], 'processing');
            if (outcome.kind === 'changed') {
              await addToOutbox(tx, { type: 'order.status_changed', key: String(state.customerId), payload: { id: state.orderId, from: 'pending', to: 'processing' } });
            } else if (outcome.kind === 'missing' || outcome.current !== 'processing') {
              throw new AppError('ORDER.INVALID_TRANSITION', `order ${state.orderId} can no longer be confirmed`);
            }
          });
        },
      },
    ],
  };

  async function insertNewOrder(tx: TxSql, order: NewOrder, bucket: number): Promise<Order> {
    const created = (await insertOrderWithItems(tx, order, { bucket }))!;
    await addToOutbox(tx, { type: 'order.created', key: String(created.customerId), payload: { id: created.id, customerId: created.customerId, totalAmount: created.totalAmount } });
    return created;
  }

  /** Reads `bucket`'s orders on its owner; empty lists are confirmed by ownership (a moved bucket is looked up again). */
  async function onOwner<T>(bucket: number, read: (sql: Sql) => Promise<T[]>): Promise<T[]> {
    return (await readBucket(shards, bucket, async (sql) => {
      const rows = await read(sql);
      return rows.length > 0 ? rows : undefined;
    })) ?? [];
  }

  async function moveOrder(from: TxSql, to: TxSql, id: number, toCustomerId: number): Promise<Order> {
    const [order] = await from<{ customer_id: string; status: OrderStatus; total_amount: string; notes: string | null; created_at: Date }[]>`
      select customer_id, status, total_amount, notes, created_at from orders.orders where id = ${id} for update`;
    if (!order) throw notFound(id);
    if (Number(order.customer_id) === toCustomerId) {
      throw new AppError('REQUEST.INVALID', `order ${id} already belongs to customer ${toCustomerId}`, { details: { field: 'toCustomerId' } });
    }
    const toBucket = bucketOfKey(toCustomerId);
    const [created] = await to<{ id: string }[]>`
      insert into orders.orders (id, customer_id, bucket, status, total_amount, notes, created_at, updated_at)
      values ((nextval('orders.order_seq') * 64 + (select shard_id from shard.info)) * 1024 + ${toBucket},
              ${toCustomerId}, ${toBucket}, ${order.status}, ${order.total_amount}, ${order.notes}, ${order.created_at}, now())
      returning id`;
    const newId = Number(created!.id);
    const items = await from<{ product_id: string; quantity: number; price: string }[]>`
      select product_id, quantity, price from orders.order_items where order_id = ${id} order by id`;
    if (items.length > 0) {
      await to`insert into orders.order_items (order_id, product_id, quantity, price)
        select ${newId}, p, q, pr from unnest(${items.map((i) => i.product_id)}::bigint[], ${items.map((i) => i.quantity)}::int[], ${items.map((i) => i.price)}::numeric[])
        with ordinality as t(p, q, pr, n) order by n`;
    }
    await from`delete from orders.orders where id = ${id}`;
    await from`insert into orders.forwarded_orders (old_id, new_id, bucket) values (${id}, ${newId}, ${bucketOfId(id)})`;
    await to`update orders.forwarded_orders set new_id = ${newId} where new_id = ${id}`;
    await addToOutbox(to, { type: 'order.transferred', key: String(toCustomerId), payload: { id: newId, previousId: id, fromCustomerId: Number(order.customer_id), toCustomerId } },
      { notify: from === to });
    return (await findOrder(to, newId))!;
  }

  return {
    checkoutSaga: checkout,
    sagas,

    async create(order: NewOrder): Promise<Order> {
      const bucket = bucketOfKey(order.customerId);
      return inBucket(shards, bucket, { label: 'orders.create' }, (tx) => insertNewOrder(tx, order, bucket));
    },

    /**
     * create() at most once per Idempotency-Key: the key is kept on the customer's shard, in the order's own
     * transaction (see idempotent()).
     */
    async createOnce(order: NewOrder, idempotency: { key: string; requestHash: string; ttlMs: number }): Promise<IdempotentOutcome> {
      const bucket = bucketOfKey(order.customerId);
      return whileMoving(shards, bucket, {}, () => {
        const shard = shards.ofBucket(bucket);
        return idempotent({
          scope: 'orders.create', ...idempotency, sql: shard.sql, txOptions: { label: 'orders.create' },
          transaction: (options, fn) => shard.transaction(options, async (tx) => { await lockBucket(tx, bucket, shard.id); return fn(tx); }),
        }, async (tx) => ({ status: 201, body: await insertNewOrder(tx, order, bucket) }));
      });
    },

    async get(id: number): Promise<Lookup> {
      const bucket = bucketOfId(id);
      const found = await readBucket(shards, bucket, async (sql) => {
        const order = await findOrder(sql, id);
        if (order) return { order };
        const [forward] = await sql<{ new_id: string }[]>`select new_id from orders.forwarded_orders where old_id = ${id}`;
        return forward ? { movedTo: Number(forward.new_id) } : undefined;
      });
      return found;
    },

    async transition(id: number, to: OrderStatus): Promise<TransitionResult> {
      return inBucket(shards, bucketOfId(id), { label: 'orders.transition' }, async (tx) => {
        const outcome = await transitionOrder(tx, id, statusesLeadingTo(to), to);
        if (outcome.kind === 'changed') {
          await addToOutbox(tx, { type: 'order.status_changed', key: String(outcome.order.customerId), payload: { id, from: outcome.from, to } });
        }
        return outcome;
      });
    },

    async remove(id: number): Promise<boolean> {
      return inBucket(shards, bucketOfId(id), { label: 'orders.delete' }, async (tx) => {
        const deleted = await deleteOrder(tx, id);
        // Other instances drop their cached copy of the order when this event reaches them.
        if (deleted) await addToOutbox(tx, { type: 'order.deleted', key: String(deleted.customerId), payload: { id } });
        return deleted !== undefined;
      });
    },

    async importItems(id: number, csv: Readable, options: ImportOptions): Promise<ImportResult> {
      return inBucket(shards, bucketOfId(id), { label: 'orders.import', deadlineMs: deps.importDeadlineMs, maxAttempts: 1 },
        (tx) => importOrderItems(tx, id, csv, options), { movingWaitMs: 0 });
    },

    async list(query: { customerId?: number; status?: OrderStatus; beforeId?: number; limit: number; consistency: Consistency }): Promise<OrderPage> {
      if (query.customerId !== undefined) {
        const rows = await onOwner(bucketOfKey(query.customerId), (sql) => shardPageQuery(sql, { ...query, ownedOnly: true }, query.limit));
        return { items: rows.map((r) => r.order!), missingShards: [], lastId: rows.length === query.limit ? Number(rows.at(-1)!.id) : undefined };
      }
      // One statement per shard, all at once: each sends the ids of its whole page and about its share of the
      // orders whole (see wholeOrdersPerShard). Only a shard holding more of the merged page than it sent whole
      // is asked again, for just those orders, within what is left of the deadline.
      const all = shards.all();
      const started = Date.now();
      const withOrders = wholeOrdersPerShard(query.limit, all.length);
      const pages = await scatter(all, deps.shardDeadlineMs, query.consistency, async (shard, signal) => {
        const rows = await abortable(shardPageQuery(shard.sql, { ...query, ownedOnly: true }, withOrders), signal);
        return rows.map((r) => ({ id: Number(r.id), order: r.order, shard }));
      });
      const kept = mergeDescending(pages.answers.map((a) => a.value), (o) => o.id, query.limit);
      const lacking = new Map<Shard, number[]>();
      for (const row of kept) {
        if (row.order !== null) continue;
        const ids = lacking.get(row.shard) ?? [];
        ids.push(row.id);
        lacking.set(row.shard, ids);
      }
      let late: typeof pages.missing = [];
      const fetched = new Map<number, string>();
      if (lacking.size > 0) {
        const deadlineLeft = Math.max(1, deps.shardDeadlineMs - (Date.now() - started));
        const more = await scatter([...lacking.keys()], deadlineLeft, query.consistency, async (shard, signal) =>
          abortable(ordersByIdsQuery(shard.sql, lacking.get(shard)!), signal));
        for (const { value } of more.answers) for (const r of value) fetched.set(Number(r.id), r.order!);
        late = more.missing;
      }
      // An order deleted between the two statements is left out; the cursor still follows the merged ids.
      const items: string[] = [];
      for (const row of kept) {
        const order = row.order ?? fetched.get(row.id);
        if (order !== undefined) items.push(order);
      }
      const missingShards = [...new Set([...pages.missing, ...late].map((m) => m.shard.id))].sort((a, b) => a - b);
      return { items, missingShards, lastId: kept.length === query.limit ? kept.at(-1)!.id : undefined };
    },

    async stats(consistency: Consistency): Promise<OrderStats & { missingShards: number[] }> {
      const { answers, missing } = await scatter(shards.all(), deps.shardDeadlineMs, consistency, (shard, signal) => statsOf(shard.sql, signal));
      const byStatus = Object.fromEntries(ORDER_STATUSES.map((s) => [s, 0])) as Record<OrderStatus, number>;
      for (const { value } of answers) for (const s of ORDER_STATUSES) byStatus[s] += value[s] ?? 0;
      return { byStatus, total: Object.values(byStatus).reduce((a, b) => a + b, 0), missingShards: missing.map((m) => m.shard.id) };
    },

    /** Moves an order and its items to another customer: one local transaction, or a two-phase commit across shards. */
    async transfer(id: number, toCustomerId: number): Promise<Order> {
      const fromBucket = bucketOfId(id);
      const toBucket = bucketOfKey(toCustomerId);
      return whileMoving(shards, fromBucket, {}, () => {
        const from = shards.ofBucket(fromBucket);
        const to = shards.ofBucket(toBucket);
        if (from.id === to.id) {
          return from.transaction({ label: 'orders.transfer' }, async (tx) => {
            await lockBucket(tx, fromBucket, from.id);
            if (toBucket !== fromBucket) await lockBucket(tx, toBucket, to.id);
            return moveOrder(tx, tx, id, toCustomerId);
          });
        }
        return twoPhaseCommit(shards.catalog, [from, to], async ([a, b]) => {
          await lockBucket(a!, fromBucket, from.id);
          await lockBucket(b!, toBucket, to.id);
          return moveOrder(a!, b!, id, toCustomerId);
        }, { deadlineMs: deps.txDeadlineMs, fault, log: deps.log });
      });
    },

    /**
     * The checkout saga, run to its end by the request's deadline: the order, processing; or the failed step after
     * compensation. A saga still running at the deadline answers SAGA.PENDING with its id and goes on to its end
     * (GET /orders/checkout/:sagaId tells how it ended).
     */
    async checkout(request: { customerId: number; items: NewOrderItem[]; paymentToken: string }): Promise<{ sagaId: string; order: Order }> {
      const sagaId = randomUUID();
      const deadlineAt = currentDeadline() ?? Date.now() + deps.txDeadlineMs;
      const running = sagas.start(checkout, { ...request, sagaId: '' }, sagaId, { deadlineAt });
      const outcome = await settledBy(running, deadlineAt);
      if (outcome === undefined) {
        running.catch((error: unknown) => deps.log?.(`checkout saga ${sagaId} failed after its request was answered; resume() takes it up`, error));
        throw new AppError('SAGA.PENDING', `checkout ${sagaId} did not finish within the request's deadline; it goes on, ask GET /orders/checkout/${sagaId}`,
          { details: { sagaId, outcome: 'pending' } });
      }
      if (outcome.status === 'completed') {
        const found = await this.get(outcome.state.orderId!);
        return { sagaId: outcome.id, order: (found as { order: Order }).order };
      }
      throw new CheckoutFailed(outcome.id, outcome.failedStep, outcome.compensated, outcome.state.orderId, outcome.error);
    },

    /** Where a checkout saga is: running, compensating, completed or compensated, with its order. */
    async checkoutStatus(sagaId: string): Promise<{ sagaId: string; status: string; orderId: number | null; failedStep: string | null }> {
      const row = await sagas.status(sagaId);
      if (!row || row.kind !== checkout.kind) throw new AppError('SAGA.NOT_FOUND', `checkout ${sagaId} does not exist`, { details: { sagaId } });
      const orderId = (row.state as Partial<CheckoutState>).orderId;
      return { sagaId, status: row.status, orderId: orderId ?? null, failedStep: row.failed_step };
    },

    /** Sets a product's stock on every shard (each shard stocks its own customers). */
    async setStock(productId: number, available: number): Promise<void> {
      await Promise.all(shards.all().map((shard) => shard.sql`
        insert into orders.inventory (product_id, available) values (${productId}, ${available})
        on conflict (product_id) do update set available = excluded.available`));
    },

    /** Whether `id`'s bucket is owned where the map says (used by tests and `shards status`). */
    async ownerOf(id: number): Promise<boolean> {
      return ownsBucket(shards.ofBucket(bucketOfId(id)).sql, bucketOfId(id));
    },
  };
}

export type OrdersService = ReturnType<typeof createOrdersService>;

/**
 * How many orders each shard sends whole with the ids of its page: its share of the page plus a margin (about
 * two standard deviations when orders are spread evenly), so that the merged page rarely needs a second
 * statement; a page dominated by one shard (its ids run ahead) takes one for that shard.
 */
export function wholeOrdersPerShard(limit: number, shardCount: number): number {
  return Math.min(limit, Math.ceil(limit / shardCount) + Math.ceil(Math.sqrt(limit)));
}

async function statsOf(sql: Sql, signal: AbortSignal): Promise<Partial<Record<OrderStatus, number>>> {
  const rows = await abortable(orderStatsQuery(sql), signal);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Maps a failed checkout to the answer: the failed step's own error, with the saga's story in its details. */
export function checkoutError(failure: CheckoutFailed): AppError {
  const cause = failure.cause;
  const details = { sagaId: failure.sagaId, failedStep: failure.failedStep, compensated: failure.compensated, orderId: failure.orderId ?? null };
  if (isAppError(cause)) return new AppError(cause.code, `checkout failed at ${failure.failedStep}: ${cause.message}`, { cause, details: { ...cause.details, ...details } });
  if (cause instanceof StepTimedOut) return new AppError('PAYMENT.UNAVAILABLE', `checkout failed at ${failure.failedStep}: ${cause.message}`, { cause, details });
  return new AppError('SERVICE.UNAVAILABLE', `checkout failed at ${failure.failedStep}`, { cause, details });
}

/** What `work` settled to by `deadlineAt`, or undefined if it had not (it goes on). A rejection passes through. */
async function settledBy<T>(work: Promise<T>, deadlineAt: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), Math.max(0, deadlineAt - Date.now())); })]);
  } finally {
    clearTimeout(timer);
  }
}
