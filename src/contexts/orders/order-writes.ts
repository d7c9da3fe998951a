import type { Readable } from 'node:stream';
import type { TxSql } from '../../platform/db/connect.ts';
import { idempotent, type IdempotentOutcome } from '../../platform/idempotency/idempotency.ts';
import { publish } from '../../platform/context/events.ts';
import { OrderCreated, OrderDeleted, OrderStatusChanged } from './events.ts';
import { bucketOfId, bucketOfKey } from '../../platform/sharding/buckets.ts';
import { inBucket, lockBucket, whileMoving } from '../../platform/sharding/routing.ts';
import type { ShardSet } from '../../platform/sharding/shard-set.ts';
import { importOrderItems, type ImportOptions, type ImportResult } from './import-order-items.ts';
import { statusesLeadingTo, type NewOrder, type Order, type OrderStatus } from './order.ts';
import {
  deleteOrder,
  insertOrderWithItems,
  transitionOrder,
  type OrderPlacement,
  type TransitionResult,
} from './orders-repository.ts';

/**
 * Writes to one order, each a transaction on the shard of the order's bucket (a new order: its customer's
 * bucket) that publishes what changed through the shard's outbox.
 */

/** Inserts the order with its items and publishes order.created; undefined when the saga's order exists already. */
export async function placeOrder(tx: TxSql, order: NewOrder, placement: OrderPlacement): Promise<Order | undefined> {
  const created = await insertOrderWithItems(tx, order, placement);
  if (created)
    await publish(tx, OrderCreated, String(created.customerId), {
      id: created.id,
      customerId: created.customerId,
      totalAmount: created.totalAmount,
    });
  return created;
}

/** Moves the order from one of `from` to `to` (see transitionOrder) and publishes order.status_changed when it moved. */
export async function changeStatus(
  tx: TxSql,
  id: number,
  from: OrderStatus[],
  to: OrderStatus,
): Promise<TransitionResult> {
  const outcome = await transitionOrder(tx, id, from, to);
  if (outcome.kind === 'changed') {
    await publish(tx, OrderStatusChanged, String(outcome.order.customerId), { id, from: outcome.from, to });
  }
  return outcome;
}

export interface OrderWritesDeps {
  shards: ShardSet;
  importDeadlineMs: number;
}

export function orderWrites({ shards, importDeadlineMs }: OrderWritesDeps) {
  return {
    async create(order: NewOrder): Promise<Order> {
      const bucket = bucketOfKey(order.customerId);
      return inBucket(
        shards,
        bucket,
        { label: 'orders.create' },
        async (tx) => (await placeOrder(tx, order, { bucket }))!,
      );
    },

    /**
     * create() at most once per Idempotency-Key: the key is kept on the customer's shard, in the order's own
     * transaction (see idempotent()).
     */
    async createOnce(
      order: NewOrder,
      idempotency: { key: string; requestHash: string; ttlMs: number },
    ): Promise<IdempotentOutcome> {
      const bucket = bucketOfKey(order.customerId);
      return whileMoving(shards, bucket, {}, () => {
        const shard = shards.ofBucket(bucket);
        return idempotent(
          {
            scope: 'orders.create',
            ...idempotency,
            sql: shard.sql,
            txOptions: { label: 'orders.create' },
            transaction: (options, fn) =>
              shard.transaction(options, async (tx) => {
                await lockBucket(tx, bucket, shard.id);
                return fn(tx);
              }),
          },
          async (tx) => ({ status: 201, body: (await placeOrder(tx, order, { bucket }))! }),
        );
      });
    },

    async transition(id: number, to: OrderStatus): Promise<TransitionResult> {
      return inBucket(shards, bucketOfId(id), { label: 'orders.transition' }, (tx) =>
        changeStatus(tx, id, statusesLeadingTo(to), to),
      );
    },

    async remove(id: number): Promise<boolean> {
      return inBucket(shards, bucketOfId(id), { label: 'orders.delete' }, async (tx) => {
        const deleted = await deleteOrder(tx, id);
        // Other instances drop their cached copy of the order when this event reaches them.
        if (deleted) await publish(tx, OrderDeleted, String(deleted.customerId), { id });
        return deleted !== undefined;
      });
    },

    async importItems(id: number, csv: Readable, options: ImportOptions): Promise<ImportResult> {
      return inBucket(
        shards,
        bucketOfId(id),
        { label: 'orders.import', deadlineMs: importDeadlineMs, maxAttempts: 1 },
        (tx) => importOrderItems(tx, id, csv, options),
        { movingWaitMs: 0 },
      );
    },
  };
}
