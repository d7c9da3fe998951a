import type { PendingQuery } from 'postgres';

/**
 * Sends several statements back to back on a transaction's connection before reading any answer (one round
 * trip once the connection has prepared them; postgres.js sends a statement alone the first time a
 * connection sees it, and keeps at most 100 in flight). Results come back in order.
 * @example const [user, count] = await pipeline([tx`insert ... returning *`, tx`select count(*) from t`]);
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function pipeline<const Q extends readonly PendingQuery<any>[]>(
  queries: Q,
): Promise<{ -readonly [K in keyof Q]: Awaited<Q[K]> }> {
  return Promise.all(queries) as Promise<{ -readonly [K in keyof Q]: Awaited<Q[K]> }>;
}
