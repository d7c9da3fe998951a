import { bucketOfId } from '../../platform/sharding/buckets.ts';
import { readBucket } from '../../platform/sharding/routing.ts';
import type { ShardSet } from '../../platform/sharding/shard-set.ts';
import type { Order } from './order.ts';
import { findForward, findOrder } from './orders-repository.ts';

/** An order found, where it was transferred to, or nothing. */
export type Lookup = { order: Order } | { movedTo: number } | undefined;

/** The order `id` names, read on the owner of its bucket; an order transferred away answers its new id. */
export async function lookUpOrder(shards: ShardSet, id: number): Promise<Lookup> {
  return readBucket(shards, bucketOfId(id), async (sql) => {
    const order = await findOrder(sql, id);
    if (order) return { order };
    const movedTo = await findForward(sql, id);
    return movedTo !== undefined ? { movedTo } : undefined;
  });
}
