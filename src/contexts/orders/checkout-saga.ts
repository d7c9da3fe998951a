import { randomUUID } from 'node:crypto';
import type { TxSql } from '../../platform/db/connect.ts';
import { currentDeadline } from '../../platform/db/deadline-scope.ts';
import { AppError, isAppError } from '../../platform/errors/app-error.ts';
import { StepTimedOut, type createSagaRunner, type SagaDefinition } from '../../platform/saga/saga.ts';
import { bucketOfKey } from '../../platform/sharding/buckets.ts';
import { inBucket } from '../../platform/sharding/routing.ts';
import type { ShardSet } from '../../platform/sharding/shard-set.ts';
import { releaseStock, reserveStock } from './inventory.ts';
import { statusesLeadingTo, type NewOrderItem, type Order } from './order.ts';
import { lookUpOrder } from './order-lookup.ts';
import { changeStatus, placeOrder } from './order-writes.ts';
import { findOrderOfSaga } from './orders-repository.ts';
import type { PaymentsPort } from './payments.ts';

/**
 * A checkout is a saga (its progress kept in the catalog): create the order, reserve its stock, charge the
 * payment, mark the order processing. A failed step compensates the steps done, in reverse: refund, release the
 * stock, cancel the order. Every step runs on the customer's shard, in a transaction holding the customer's
 * bucket, and may be repeated by a resumed saga.
 */

interface CheckoutState {
  sagaId: string;
  customerId: number;
  items: NewOrderItem[];
  paymentToken: string;
  orderId?: number;
  totalAmount?: string;
}

export interface CheckoutRequest {
  customerId: number;
  items: NewOrderItem[];
  paymentToken: string;
}

/** Where a checkout saga is, and its order once created. */
export interface CheckoutStatus {
  sagaId: string;
  status: 'running' | 'compensating' | 'completed' | 'compensated';
  orderId: number | null;
  failedStep: string | null;
}

export class CheckoutFailed extends Error {
  override name = 'CheckoutFailed';
  constructor(
    readonly sagaId: string,
    readonly failedStep: string,
    readonly compensated: string[],
    readonly orderId: number | undefined,
    override readonly cause: unknown,
  ) {
    super(`checkout failed at ${failedStep}`);
  }
}

export interface CheckoutDeps {
  shards: ShardSet;
  payments: PaymentsPort;
  sagas: ReturnType<typeof createSagaRunner>;
  /** The deadline of a checkout run outside any request's deadline. */
  txDeadlineMs: number;
  log?: (message: string, error?: unknown) => void;
}

/** The checkout saga's steps. */
export function checkoutSagaDefinition({
  shards,
  payments,
}: Pick<CheckoutDeps, 'shards' | 'payments'>): SagaDefinition<CheckoutState> {
  /** Runs `work` on the customer's shard, holding the customer's bucket. */
  const onCustomerShard = <T>(state: CheckoutState, label: string, work: (tx: TxSql) => Promise<T>) =>
    inBucket(shards, bucketOfKey(state.customerId), { label }, work);

  return {
    kind: 'orders.checkout',
    steps: [
      {
        name: 'create-order',
        async run(state) {
          const bucket = bucketOfKey(state.customerId);
          const order = await onCustomerShard(
            state,
            'orders.checkout.create',
            async (tx) =>
              (await placeOrder(
                tx,
                { customerId: state.customerId, items: state.items },
                { bucket, sagaId: state.sagaId },
              )) ?? (await findOrderOfSaga(tx, state.sagaId))!,
          );
          return { orderId: order.id, totalAmount: order.totalAmount };
        },
        async compensate(state) {
          await onCustomerShard(state, 'orders.checkout.cancel', async (tx) => {
            const order = await findOrderOfSaga(tx, state.sagaId);
            if (order) await changeStatus(tx, order.id, statusesLeadingTo('cancelled'), 'cancelled');
          });
        },
      },
      {
        name: 'reserve-stock',
        async run(state) {
          await onCustomerShard(state, 'orders.checkout.reserve', (tx) =>
            reserveStock(tx, state.sagaId, bucketOfKey(state.customerId), state.items),
          );
        },
        async compensate(state) {
          await onCustomerShard(state, 'orders.checkout.release', (tx) => releaseStock(tx, state.sagaId));
        },
      },
      {
        name: 'charge-payment',
        timeoutMs: 3000,
        async run(state, signal) {
          await payments.charge({ key: state.sagaId, amount: state.totalAmount!, token: state.paymentToken }, signal);
        },
        async compensate(state) {
          await payments.refund(state.sagaId);
        },
      },
      {
        name: 'mark-processing',
        async run(state) {
          await onCustomerShard(state, 'orders.checkout.confirm', async (tx) => {
            const outcome = await changeStatus(tx, state.orderId!, ['pending'], 'processing');
            if (outcome.kind === 'missing' || (outcome.kind === 'refused' && outcome.current !== 'processing')) {
              throw new AppError('ORDER.INVALID_TRANSITION', `order ${state.orderId} can no longer be confirmed`);
            }
          });
        },
      },
    ],
  };
}

export function checkoutSaga(deps: CheckoutDeps) {
  const { sagas } = deps;
  const definition = checkoutSagaDefinition(deps);

  return {
    definition,

    /**
     * Runs the checkout saga to its end by the request's deadline: the order, processing; or the failed step
     * after compensation. A saga still running at the deadline answers SAGA.PENDING with its id and goes on to
     * its end (GET /orders/checkout/:sagaId tells how it ended).
     */
    async checkout(request: CheckoutRequest): Promise<{ sagaId: string; order: Order }> {
      const sagaId = randomUUID();
      const deadlineAt = currentDeadline() ?? Date.now() + deps.txDeadlineMs;
      const running = sagas.start(definition, { ...request, sagaId: '' }, sagaId, { deadlineAt });
      const outcome = await settledBy(running, deadlineAt);
      if (outcome === undefined) {
        running.catch((error: unknown) =>
          deps.log?.(`checkout saga ${sagaId} failed after its request was answered; resume() takes it up`, error),
        );
        throw new AppError(
          'SAGA.PENDING',
          `checkout ${sagaId} did not finish within the request's deadline; it goes on, ask GET /orders/checkout/${sagaId}`,
          { details: { sagaId, outcome: 'pending' } },
        );
      }
      if (outcome.status === 'completed') {
        const found = await lookUpOrder(deps.shards, outcome.state.orderId!);
        return { sagaId: outcome.id, order: (found as { order: Order }).order };
      }
      throw new CheckoutFailed(
        outcome.id,
        outcome.failedStep,
        outcome.compensated,
        outcome.state.orderId,
        outcome.error,
      );
    },

    /** Where a checkout saga is: running, compensating, completed or compensated, with its order. */
    async checkoutStatus(sagaId: string): Promise<CheckoutStatus> {
      const row = await sagas.status(sagaId);
      if (!row || row.kind !== definition.kind)
        throw new AppError('SAGA.NOT_FOUND', `checkout ${sagaId} does not exist`, { details: { sagaId } });
      const orderId = (row.state as Partial<CheckoutState>).orderId;
      return { sagaId, status: row.status, orderId: orderId ?? null, failedStep: row.failed_step };
    },
  };
}

/** Maps a failed checkout to the answer: the failed step's own error, with the saga's story in its details. */
export function checkoutError(failure: CheckoutFailed): AppError {
  const cause = failure.cause;
  const details = {
    sagaId: failure.sagaId,
    failedStep: failure.failedStep,
    compensated: failure.compensated,
    orderId: failure.orderId ?? null,
  };
  if (isAppError(cause))
    return new AppError(cause.code, `checkout failed at ${failure.failedStep}: ${cause.message}`, {
      cause,
      details: { ...cause.details, ...details },
    });
  if (cause instanceof StepTimedOut)
    return new AppError('PAYMENT.UNAVAILABLE', `checkout failed at ${failure.failedStep}: ${cause.message}`, {
      cause,
      details,
    });
  return new AppError('SERVICE.UNAVAILABLE', `checkout failed at ${failure.failedStep}`, { cause, details });
}

/** What `work` settled to by `deadlineAt`, or undefined if it had not (it goes on). A rejection passes through. */
async function settledBy<T>(work: Promise<T>, deadlineAt: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), Math.max(0, deadlineAt - Date.now()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
