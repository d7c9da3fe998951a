import { AppError } from '../errors/app-error.ts';
import type { Sql, TxSql } from './connect.ts';
import { isRetryableTxError, sqlState, translatePgError } from './pg-errors.ts';

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  /** Milliseconds from the call until the transaction must be over, retries included. */
  deadlineMs?: number;
  isolation?: IsolationLevel;
  readOnly?: boolean;
  /** Names the transaction in metrics and errors. */
  label?: string;
}

export interface TransactionObserver {
  onRetry?(label: string, sqlState: string, attempt: number): void;
  onDeadlineExceeded?(label: string): void;
}

/** Everything a transaction needs from the outside world, passed in so tests control time and chance. */
export interface TransactionRuntime {
  sql: Sql;
  defaultDeadlineMs: number;
  now: () => number;
  random: () => number;
  observer?: TransactionObserver;
  /** First backoff before a retry; doubles per attempt, with full jitter. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}

export type TransactionFn = <T>(options: TransactionOptions, fn: (tx: TxSql) => Promise<T>) => Promise<T>;

interface Query { state?: unknown; active?: boolean; cancel(): unknown }

/** The slack PostgreSQL gets past the deadline before it ends a session left idle inside a transaction. */
const IDLE_SESSION_SLACK_MS = 1000;

/**
 * Builds `transaction(options, fn)`: runs `fn` in one transaction that ends by its deadline (default 2 s).
 * Serialization failures and deadlocks (40001, 40P01) run `fn` again, with backoff, while time remains.
 * The deadline holds on the server (statement_timeout, lock_timeout from the time left) and on the client
 * (the running statement is cancelled). Past it the caller gets TX.DEADLINE_EXCEEDED and nothing commits.
 * @example
 * const transaction = createTransaction({ sql, defaultDeadlineMs: 2000, now: Date.now, random: Math.random });
 * const user = await transaction({ isolation: 'read committed' }, (tx) => insertUser(tx, input));
 */
export function createTransaction(runtime: TransactionRuntime): TransactionFn {
  const baseBackoff = runtime.baseBackoffMs ?? 5;
  const maxBackoff = runtime.maxBackoffMs ?? 200;

  return async function transaction<T>(options: TransactionOptions, fn: (tx: TxSql) => Promise<T>): Promise<T> {
    const label = options.label ?? 'transaction';
    const deadlineAt = runtime.now() + (options.deadlineMs ?? runtime.defaultDeadlineMs);
    const exceeded = (cause?: unknown) => {
      runtime.observer?.onDeadlineExceeded?.(label);
      return new AppError('TX.DEADLINE_EXCEEDED', `${label} did not finish within its deadline`, { cause });
    };
    for (let attempt = 1; ; attempt++) {
      const remaining = deadlineAt - runtime.now();
      if (remaining <= 0) throw exceeded();
      try {
        return await runAttempt(runtime.sql, options, deadlineAt, remaining, runtime.now, fn);
      } catch (error) {
        if (error === DEADLINE) throw exceeded();
        const state = sqlState(error);
        // statement_timeout and lock_timeout are set from the deadline, so either firing means it has passed.
        if (state === '57014' || state === '55P03') throw exceeded(error);
        if (isRetryableTxError(error)) {
          const backoff = Math.min(maxBackoff, baseBackoff * 2 ** (attempt - 1)) * runtime.random();
          if (runtime.now() + backoff < deadlineAt) {
            runtime.observer?.onRetry?.(label, state!, attempt);
            await sleep(backoff);
            continue;
          }
          throw exceeded(error);
        }
        throw translatePgError(error);
      }
    }
  };
}

/** Thrown inside an attempt when its deadline passed before or right after the caller's work. */
const DEADLINE = Symbol('deadline');

async function runAttempt<T>(
  sql: Sql,
  options: TransactionOptions,
  deadlineAt: number,
  remaining: number,
  now: () => number,
  fn: (tx: TxSql) => Promise<T>,
): Promise<T> {
  let expired = false;
  let entered = false;
  const queries: Query[] = [];
  let rejectWaiting: ((reason: unknown) => void) | undefined;

  const timer = setTimeout(() => {
    expired = true;
    if (!entered) {
      // Still waiting for a connection or for BEGIN: answer now; the attempt aborts itself once it starts.
      rejectWaiting?.(DEADLINE);
      return;
    }
    // One cancel request stops whatever statement the transaction's backend is running.
    const running = queries.findLast((q) => q.state !== undefined);
    running?.cancel();
  }, remaining);

  const mode = [options.isolation ? `isolation level ${options.isolation}` : '', options.readOnly ? 'read only' : '']
    .filter(Boolean).join(' ');

  const attempt = sql.begin(mode, async (tx) => {
    if (expired) throw DEADLINE;
    entered = true;
    const ms = Math.max(1, Math.floor(deadlineAt - now()));
    // Not awaited: postgres.js pipelines it ahead of the caller's first statement, so it costs no round trip.
    const limits = tx`select set_config('statement_timeout', ${String(ms)}, true),
      set_config('lock_timeout', ${String(ms)}, true),
      set_config('idle_in_transaction_session_timeout', ${String(ms + IDLE_SESSION_SLACK_MS)}, true)`;
    limits.catch(() => {});
    const result = await fn(trackQueries(tx, queries));
    await limits;
    // Past the deadline nothing may commit, even work that finished: the caller is told it failed.
    if (expired) throw DEADLINE;
    return result;
  }) as Promise<T>;

  const waiting = new Promise<never>((_, reject) => { rejectWaiting = reject; });
  try {
    return await Promise.race([attempt, waiting]);
  } finally {
    clearTimeout(timer);
    attempt.catch(() => {});
  }
}

/** Wraps a transaction handle so every query made through it can be cancelled at the deadline. */
function trackQueries(tx: TxSql, queries: Query[]): TxSql {
  const track = <R>(q: R): R => {
    if (q && typeof (q as unknown as Query).cancel === 'function') queries.push(q as unknown as Query);
    return q;
  };
  return new Proxy(tx, {
    apply(target, thisArg, args) {
      return track(Reflect.apply(target as unknown as (...a: unknown[]) => unknown, thisArg, args));
    },
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'unsafe' || prop === 'file') {
        return (...args: unknown[]) => track((value as (...a: unknown[]) => unknown).apply(target, args));
      }
      if (prop === 'savepoint') {
        return (...args: unknown[]) => {
          const fnIndex = args.findIndex((a) => typeof a === 'function');
          const inner = args[fnIndex] as (s: TxSql) => unknown;
          args[fnIndex] = (s: TxSql) => inner(trackQueries(s, queries));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return value;
    },
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
