import type { Sql } from '../../platform/db/connect.ts';
import { AppError } from '../../platform/errors/app-error.ts';

/** What a checkout needs from a payment provider. Both calls are idempotent by key. */
export interface PaymentsPort {
  /** Charges `amount` once per key; throws PAYMENT.DECLINED when the provider refuses. */
  charge(request: { key: string; amount: string; token: string }, signal: AbortSignal): Promise<void>;
  /** Gives a charge back; nothing happens when there was none (or it was refunded already). */
  refund(key: string): Promise<void>;
}

/**
 * The bundled payments provider: a local simulator with a ledger on the main database (payments.simulated_charges).
 * The token steers it: `tok_decline` is refused, `tok_timeout` never answers (the step's timeout fires), any
 * other token is charged.
 */
export function createSimulatedPayments(sql: Sql): PaymentsPort {
  return {
    async charge({ key, amount, token }, signal) {
      if (token === 'tok_decline')
        throw new AppError('PAYMENT.DECLINED', 'the payment was declined', { details: { reason: 'card_declined' } });
      if (token === 'tok_timeout') {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        throw new AppError('PAYMENT.UNAVAILABLE', 'the payment provider did not answer in time');
      }
      await sql`insert into payments.simulated_charges (idempotency_key, amount, status) values (${key}, ${amount}, 'charged')
        on conflict (idempotency_key) do nothing`;
    },
    async refund(key) {
      await sql`update payments.simulated_charges set status = 'refunded' where idempotency_key = ${key} and status = 'charged'`;
    },
  };
}
