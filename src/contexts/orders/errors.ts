import type { ErrorTable } from '../../platform/context/context-module.ts';

/** The orders context's error codes (orders, their items' import, stock and payments) and their HTTP statuses. */
export const ORDERS_ERRORS = {
  'ORDER.NOT_FOUND': { status: 404 },
  'ORDER.INVALID_TRANSITION': { status: 409 },
  'IMPORT.REJECTED': { status: 422 },
  'STOCK.INSUFFICIENT': { status: 409 },
  'PAYMENT.DECLINED': { status: 402 },
  'PAYMENT.UNAVAILABLE': { status: 503, retryAfterSeconds: 1 },
} as const satisfies ErrorTable;
