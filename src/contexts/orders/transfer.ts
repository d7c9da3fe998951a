import type { TxSql } from '../../platform/db/connect.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import type { FaultPoint } from '../../platform/faults.ts';
import { publish } from '../../platform/context/events.ts';
import { OrderTransferred } from './events.ts';
import { bucketOfId, bucketOfKey } from '../../platform/sharding/buckets.ts';
import { lockBucket, whileMoving } from '../../platform/sharding/routing.ts';
import type { ShardSet } from '../../platform/sharding/shard-set.ts';
import { twoPhaseCommit } from '../../platform/sharding/two-phase.ts';
import { orderNotFound, type Order } from './order.ts';
import {
  deleteOrder,
  findOrder,
  insertForward,
  insertItemRows,
  insertOrderCopy,
  lockOrder,
  orderItemRows,
  repointForwards,
} from './orders-repository.ts';

export interface TransferDeps {
  shards: ShardSet;
  /** Deadline of a transfer's two-phase commit. */
  txDeadlineMs: number;
  fault: FaultPoint;
  log?: (message: string, error?: unknown) => void;
}

/**
 * Moves an order and its items to another customer: the order gets a new id on the shard of the new customer's
 * bucket, and its old id forwards there. Within one shard it is one transaction; across shards, one two-phase
 * commit. The source bucket is locked first, then the target's.
 */
export async function transferOrder(
  { shards, txDeadlineMs, fault, log }: TransferDeps,
  id: number,
  toCustomerId: number,
): Promise<Order> {
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
    return twoPhaseCommit(
      shards.catalog,
      [from, to],
      async ([a, b]) => {
        await lockBucket(a!, fromBucket, from.id);
        await lockBucket(b!, toBucket, to.id);
        return moveOrder(a!, b!, id, toCustomerId);
      },
      { deadlineMs: txDeadlineMs, fault, log },
    );
  });
}

/**
 * The move itself, with the buckets locked: lock the order, copy it and its items under a new id on `to`,
 * delete it from `from`, forward its old id (and any id that forwarded to it) to the new one, publish
 * order.transferred on the target.
 */
async function moveOrder(from: TxSql, to: TxSql, id: number, toCustomerId: number): Promise<Order> {
  const order = await lockOrder(from, id);
  if (!order) throw orderNotFound(id);
  if (Number(order.customer_id) === toCustomerId) {
    throw new AppError('REQUEST.INVALID', `order ${id} already belongs to customer ${toCustomerId}`, {
      details: { field: 'toCustomerId' },
    });
  }
  const newId = await insertOrderCopy(to, order, toCustomerId, bucketOfKey(toCustomerId));
  const items = await orderItemRows(from, id);
  if (items.length > 0) await insertItemRows(to, newId, items);
  await deleteOrder(from, id);
  await insertForward(from, id, newId, bucketOfId(id));
  await repointForwards(to, id, newId);
  await publish(
    to,
    OrderTransferred,
    String(toCustomerId),
    { id: newId, previousId: id, fromCustomerId: Number(order.customer_id), toCustomerId },
    { notify: from === to },
  );
  return (await findOrder(to, newId))!;
}
