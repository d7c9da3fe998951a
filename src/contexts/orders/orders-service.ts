import type { FaultPoint } from '../../platform/faults.ts';
import { createSagaRunner } from '../../platform/saga/saga.ts';
import { bucketOfId } from '../../platform/sharding/buckets.ts';
import { ownsBucket } from '../../platform/sharding/routing.ts';
import type { ShardSet } from '../../platform/sharding/shard-set.ts';
import { checkoutSaga } from './checkout-saga.ts';
import { setStock } from './inventory.ts';
import { lookUpOrder } from './order-lookup.ts';
import { orderWrites } from './order-writes.ts';
import type { PaymentsPort } from './payments.ts';
import { scatterListing } from './scatter-listing.ts';
import { transferOrder } from './transfer.ts';

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

/**
 * The orders context over its shards: a customer's orders live on the shard of the customer's bucket, an
 * order's id names its bucket. Each use case is its own module: one order's writes (order-writes), its lookup
 * (order-lookup), listings and stats across shards (scatter-listing), a transfer between customers (transfer),
 * the checkout saga (checkout-saga) and stock (inventory).
 */
export function createOrdersService(deps: OrdersServiceDeps) {
  const { shards } = deps;
  const fault = deps.fault ?? (() => {});
  const sagas = createSagaRunner({ sql: shards.catalog, leaseMs: deps.sagaLeaseMs, fault, log: deps.log });
  const writes = orderWrites({ shards, importDeadlineMs: deps.importDeadlineMs });
  const listing = scatterListing({ shards, shardDeadlineMs: deps.shardDeadlineMs });
  const checkout = checkoutSaga({
    shards,
    payments: deps.payments,
    sagas,
    txDeadlineMs: deps.txDeadlineMs,
    log: deps.log,
  });

  return {
    checkoutSaga: checkout.definition,
    sagas,
    create: writes.create,
    createOnce: writes.createOnce,
    get: (id: number) => lookUpOrder(shards, id),
    transition: writes.transition,
    remove: writes.remove,
    importItems: writes.importItems,
    list: listing.list,
    stats: listing.stats,
    transfer: (id: number, toCustomerId: number) =>
      transferOrder({ shards, txDeadlineMs: deps.txDeadlineMs, fault, log: deps.log }, id, toCustomerId),
    checkout: checkout.checkout,
    checkoutStatus: checkout.checkoutStatus,
    setStock: (productId: number, available: number) => setStock(shards, productId, available),
    /** Whether `id`'s bucket is owned where the map says (used by tests and `shards status`). */
    ownerOf: (id: number) => ownsBucket(shards.ofBucket(bucketOfId(id)).sql, bucketOfId(id)),
  };
}

export type OrdersService = ReturnType<typeof createOrdersService>;
