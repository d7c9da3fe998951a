import { AsyncLocalStorage } from 'node:async_hooks';

/** What a request gives back when it is cut off: the connections it holds, by a function that frees each. */
export type Holdings = Set<() => void>;

/** The deadline the current call chain works under (a request's, a transaction's), in epoch milliseconds. */
interface DeadlineScope {
  deadlineAt: number;
  holdings: Holdings | undefined;
}

const scopes = new AsyncLocalStorage<DeadlineScope | undefined>();

/**
 * Runs `fn` under a deadline: every pooled connection it (or anything it calls) waits for is given up at
 * `deadlineAt`. A scope inside another keeps the earlier of the two deadlines. With `holdings`, connections
 * reserved under the scope register how to free them, so a request cut off at its deadline can give them back.
 * @example await withDeadline(Date.now() + 2000, () => sql`select 1`);
 */
export function withDeadline<T>(deadlineAt: number, fn: () => T, holdings?: Holdings): T {
  const outer = scopes.getStore();
  const at = outer === undefined ? deadlineAt : Math.min(outer.deadlineAt, deadlineAt);
  return scopes.run({ deadlineAt: at, holdings: holdings ?? outer?.holdings }, fn);
}

/**
 * The deadline of the current call chain, or undefined outside any scope.
 * @example const deadlineAt = currentDeadline() ?? now() + 2000;
 */
export function currentDeadline(): number | undefined {
  return scopes.getStore()?.deadlineAt;
}

/** The holdings of the current call chain's request, if it keeps any. */
export function currentHoldings(): Holdings | undefined {
  return scopes.getStore()?.holdings;
}

/**
 * Runs `fn` outside any deadline scope: work that must go on after the request that started it answered (a
 * saga compensating) waits under its own bounds, not under a deadline that has passed.
 * @example void outsideDeadline(() => finishInBackground());
 */
export function outsideDeadline<T>(fn: () => T): T {
  // A scope with no store rather than exit(): exit() only hides the store while `fn` runs synchronously, and
  // continuations of what `fn` awaits could find the caller's scope again.
  return scopes.run(undefined, fn);
}

/** Runs `fn` under `deadlineAt` alone, whatever scope it is called from (a saga step bounded by its own timeout). */
export function withOwnDeadline<T>(deadlineAt: number, fn: () => T): T {
  return scopes.run({ deadlineAt, holdings: undefined }, fn);
}
