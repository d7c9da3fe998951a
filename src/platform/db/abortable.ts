/** A postgres.js query: awaitable and cancellable. */
interface CancellableQuery<T> extends PromiseLike<T> {
  cancel(): unknown;
}

/**
 * Cancels without letting the cancel request fail loudly: postgres.js's `Query.cancel()` drops the promise of
 * the cancel request, which travels on a socket of its own and rejects when the server is gone (a failover:
 * `connect ECONNREFUSED`), an unhandled rejection that ends the process. So the canceller is called here and
 * its promise caught; a failed cancel only means the statement runs to its own end, if the server still lives.
 */
function cancelQuietly(query: CancellableQuery<unknown>): void {
  const q = query as unknown as { canceller?: ((q: unknown) => Promise<unknown> | void) | null; active?: boolean };
  if (typeof q.canceller !== 'function') {
    if (!('canceller' in q)) query.cancel();
    return;
  }
  // Only a statement running on the server. postgres.js "cancels" one still queued behind another on the same
  // connection by dropping it from its list while the server still answers it, handing that answer to the next
  // statement; and one that opened a new connection by leaving the connection stuck. Those run to their end.
  if (q.active !== true) return;
  const cancel = q.canceller;
  q.canceller = null;
  try {
    void Promise.resolve(cancel(query)).catch(() => {});
  } catch {
    // Nothing to cancel any more.
  }
}

/**
 * Runs a query that is cancelled on the server when `signal` aborts (a timeout policy gave up on it), so an
 * abandoned read does not keep a connection busy.
 * @example const rows = await abortable(sql`select body from notes.notes where id = ${id}`, signal);
 */
export async function abortable<T>(query: CancellableQuery<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    cancelQuietly(query);
    throw signal.reason ?? new Error('aborted');
  }
  const onAbort = () => {
    cancelQuietly(query);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await query;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
