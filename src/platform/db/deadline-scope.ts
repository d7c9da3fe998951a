import { AsyncLocalStorage } from 'node:async_hooks';

/** What a request gives back when it is cut off: the connections it holds, by a function that frees each. */
export type Holdings = Set<() => void>;

/** The deadline the current call chain works under (a request's, a transaction's), in epoch milliseconds. */
interface DeadlineScope {
  deadlineAt: number;
  holdings: Holdings | undefined;
}

const scopes = new AsyncLocalStorage<DeadlineScope>();

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
