import type { PendingQuery } from 'postgres';

/**
 * Sends several statements in one round trip inside a transaction: postgres.js writes them back to back
 * on the transaction's connection before reading any answer. Results come back in order.
 * @example const [user, count] = await pipeline([tx`insert ... returning *`, tx`select count(*) from t`]);
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function pipeline<const Q extends readonly PendingQuery<any>[]>(
  queries: Q,
): Promise<{ -readonly [K in keyof Q]: Awaited<Q[K]> }> {
  return Promise.all(queries) as Promise<{ -readonly [K in keyof Q]: Awaited<Q[K]> }>;
}
