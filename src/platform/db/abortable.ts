/** A postgres.js query: awaitable and cancellable. */
interface CancellableQuery<T> extends PromiseLike<T> {
  cancel(): unknown;
}

/**
 * Runs a query that is cancelled on the server when `signal` aborts (a timeout policy gave up on it), so an
 * abandoned read does not keep a connection busy.
 * @example const rows = await abortable(sql`select url from images.account_images where account_id = ${id}`, signal);
 */
export async function abortable<T>(query: CancellableQuery<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    query.cancel();
    throw signal.reason ?? new Error('aborted');
  }
  const onAbort = () => { query.cancel(); };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await query;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
