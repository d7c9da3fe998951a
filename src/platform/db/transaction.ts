import { AppError } from '../errors/app-error.ts';
import { primaryState, type Sql, type TxSql } from './connect.ts';
import { currentDeadline, withDeadline } from './deadline-scope.ts';
import { admit } from './pool-gate.ts';
import { inSpan, tracingActive, type Span } from '../observability/tracing.ts';
import { traceStatement } from './statement-spans.ts';
import { isConnectionError, isRetryableTxError, retryReason, sqlState, translatePgError } from './pg-errors.ts';

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  /** Milliseconds from the call until the transaction must be over, retries included. */
  deadlineMs?: number;
  isolation?: IsolationLevel;
  readOnly?: boolean;
  /** Names the transaction in metrics and errors. */
  label?: string;
  /** Most attempts (default: as many as the deadline allows); 1 for work that cannot run twice, e.g. a consumed stream. */
  maxAttempts?: number;
  /**
   * The work leaves the same state however often it commits (it sets values, it adds nothing that counts):
   * when the connection breaks after COMMIT was sent it runs again instead of failing with an unknown outcome.
   */
  rerunIfCommitUnknown?: boolean;
  /**
   * No BEGIN and COMMIT (with `readOnly` only): each statement of `fn` runs on its own, on one reserved
   * connection. For a read of one statement, which a transaction would cost two more round trips. Still run again
   * when a connection is lost, and cancelled at the deadline, also while waiting for a connection; the server
   * enforces neither read-only nor the deadline (the pool's statement_timeout stands), and `fn` gets no savepoints.
   */
  autocommit?: boolean;
}

export interface TransactionObserver {
  onRetry?(label: string, sqlState: string, attempt: number): void;
  onDeadlineExceeded?(label: string): void;
  /** The transaction committed (after however many attempts). */
  onCommit?(label: string): void;
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

interface Query {
  /** True only while the statement runs on the server (postgres.js sets it when sent, clears it when settled). */
  active?: boolean;
  /** postgres.js's cancel function; it returns the cancel request's promise, which `Query.cancel()` drops. */
  canceller?: ((q: Query) => Promise<unknown> | void) | null;
}

/** The slack PostgreSQL gets past the deadline before it ends a session left idle inside a transaction. */
const IDLE_SESSION_SLACK_MS = 1000;
/** How long past the deadline the caller waits for the attempt to wind down before being answered anyway. */
const ANSWER_GRACE_MS = 100;

/**
 * Builds `transaction(options, fn)`: runs `fn` in one transaction that ends by its deadline (default 2 s).
 * Serialization failures and deadlocks (40001, 40P01), and a connection lost or refused before COMMIT was
 * sent (a failover), run `fn` again from the start, with backoff, while time remains.
 * The deadline holds on the server (statement_timeout, lock_timeout from the time left) and on the client
 * (the running statement is cancelled, and so is the wait for a connection). Past it the caller gets
 * TX.DEADLINE_EXCEEDED, or DB.UNAVAILABLE when it was the database that could not be reached, and nothing
 * commits. A connection lost after COMMIT was sent is not retried (the outcome is unknown, and said so) unless
 * the work says a second commit changes nothing (`rerunIfCommitUnknown`).
 * @example
 * const transaction = createTransaction({ sql, defaultDeadlineMs: 2000, now: Date.now, random: Math.random });
 * const user = await transaction({ isolation: 'read committed' }, (tx) => insertUser(tx, input));
 */
export function createTransaction(runtime: TransactionRuntime): TransactionFn {
  const baseBackoff = runtime.baseBackoffMs ?? 5;
  const maxBackoff = runtime.maxBackoffMs ?? 200;

  return async function transaction<T>(options: TransactionOptions, fn: (tx: TxSql) => Promise<T>): Promise<T> {
    const label = options.label ?? 'transaction';
    if (options.autocommit && !options.readOnly) {
      // A write whose connection broke could have been applied: running it again is not ours to decide.
      throw new TypeError(`${label}: autocommit is for readOnly work`);
    }
    // A span inside a trace only (a request, a consumed event): background work such as a relay's polls would
    // otherwise make a trace of every poll.
    if (!tracingActive()) return attempts(label, options, fn, undefined);
    return inSpan(
      `transaction ${label}`,
      {
        attributes: {
          'db.system.name': 'postgresql',
          'stratum.transaction': label,
          ...(options.isolation ? { 'stratum.isolation': options.isolation } : {}),
          'stratum.read_only': options.readOnly === true,
          ...(options.autocommit ? { 'stratum.autocommit': true } : {}),
        },
      },
      (span) => attempts(label, options, fn, span),
    );
  };

  async function attempts<T>(
    label: string,
    options: TransactionOptions,
    fn: (tx: TxSql) => Promise<T>,
    span: Span | undefined,
  ): Promise<T> {
    // Never later than the deadline of the request (or other scope) it runs in.
    const deadlineAt = Math.min(
      runtime.now() + (options.deadlineMs ?? runtime.defaultDeadlineMs),
      currentDeadline() ?? Number.POSITIVE_INFINITY,
    );
    // The last connection failure of this call: a deadline passing after one means the database was away.
    let unreachable: unknown;
    const exceeded = (cause?: unknown) => {
      runtime.observer?.onDeadlineExceeded?.(label);
      if (unreachable !== undefined || primaryState(runtime.sql)?.unreachable) {
        return new AppError('DB.UNAVAILABLE', `${label}: no database primary could be reached within the deadline`, {
          cause: cause ?? unreachable,
        });
      }
      return new AppError('TX.DEADLINE_EXCEEDED', `${label} did not finish within its deadline`, { cause });
    };
    for (let attempt = 1; ; attempt++) {
      const remaining = deadlineAt - runtime.now();
      if (remaining <= 0) throw exceeded();
      const progress = { commitSent: false };
      try {
        // Anything the work waits for, on this pool or another, is bounded by the same deadline.
        const result = await withDeadline(deadlineAt, () =>
          runAttempt(runtime.sql, options, deadlineAt, runtime.now, fn, progress),
        );
        runtime.observer?.onCommit?.(label);
        span?.setAttribute('stratum.attempts', attempt);
        return result;
      } catch (error) {
        if (error === DEADLINE) throw exceeded();
        const state = sqlState(error);
        // A write refused as read-only (25006) on a pool that wants the primary: the connection reached a node in
        // recovery, e.g. a primary restarting after its postmaster died, before Patroni promotes it again. Run
        // again like a connection failure, within the deadline. Not for a transaction declared read-only.
        const notPrimaryYet = state === '25006' && !options.readOnly && primaryState(runtime.sql) !== undefined;
        if (notPrimaryYet) unreachable = error;
        if (isConnectionError(error)) {
          // COMMIT may have reached the server before the connection broke: running fn again could apply it twice.
          if (progress.commitSent && !options.rerunIfCommitUnknown) throw commitOutcomeUnknown(label, error);
          unreachable = error;
        }
        // statement_timeout and lock_timeout are set from the deadline: either firing near it means it has passed
        // (a 55P03 from NOWAIT, or a cancel by someone else, well before the deadline is reported as what it is).
        if ((state === '57014' || state === '55P03') && runtime.now() >= deadlineAt - DEADLINE_TOLERANCE_MS)
          throw exceeded(error);
        if ((isRetryableTxError(error) || notPrimaryYet) && attempt < (options.maxAttempts ?? Infinity)) {
          const backoff = Math.min(maxBackoff, baseBackoff * 2 ** (attempt - 1)) * runtime.random();
          if (runtime.now() + backoff < deadlineAt) {
            runtime.observer?.onRetry?.(label, retryReason(error), attempt);
            span?.addEvent('retry', { attempt, reason: retryReason(error), 'backoff.ms': Math.round(backoff) });
            await sleep(backoff);
            continue;
          }
          throw exceeded(error);
        }
        // The caller's own errors pass through as they are; only database errors are translated.
        if (state === undefined && !isConnectionError(error)) throw error;
        throw translatePgError(error);
      }
    }
  }
}

function commitOutcomeUnknown(label: string, cause: unknown): AppError {
  return new AppError(
    'DB.UNAVAILABLE',
    `${label}: the connection broke after COMMIT was sent; whether it committed is unknown`,
    { cause, details: { commitOutcome: 'unknown' } },
  );
}

interface AttemptState {
  /** The caller's work has started: the connection is held (and, in a transaction, BEGIN is done). */
  entered: boolean;
  expired: boolean;
  /** The connection error that ended the attempt's connection, once one did. */
  lost: unknown;
  committing: boolean;
  queries: Query[];
  cancelling: Promise<unknown> | undefined;
}

/** What an abandoned transaction scope is left waiting on. */
const UNSETTLED = new Promise<never>(() => {});

/** Thrown inside an attempt when its deadline passed before or right after the caller's work. */
const DEADLINE = Symbol('deadline');
/** Server timers and ours may disagree by a few milliseconds. */
const DEADLINE_TOLERANCE_MS = 25;

async function runAttempt<T>(
  sql: Sql,
  options: TransactionOptions,
  deadlineAt: number,
  now: () => number,
  fn: (tx: TxSql) => Promise<T>,
  progress: { commitSent: boolean },
): Promise<T> {
  // A connection of the pool first, within the deadline (DB.POOL_EXHAUSTED otherwise, nothing started).
  const { pool, release } = await admit(sql, deadlineAt);
  const remaining = deadlineAt - now();
  if (remaining <= 0) {
    release();
    throw DEADLINE;
  }
  if (options.autocommit) return runStatements(pool, remaining, fn, release);
  const state = newAttemptState();
  let answerNow: ((reason: unknown) => void) | undefined;
  // The connection broke under the caller's work. postgres.js would write ROLLBACK or COMMIT on the closed
  // connection and crash the process from a timer (porsager/postgres#1208), or run them on the connection it
  // reopens: the scope is left unsettled instead (begin() itself is rejected by the close) and the caller is
  // answered with the connection error now.
  const abandon = (error: unknown): Promise<never> => {
    state.lost ??= error;
    answerNow?.(state.lost);
    return UNSETTLED;
  };

  const disarm = armDeadline(state, remaining, (reason) => answerNow?.(reason));

  const mode = [options.isolation ? `isolation level ${options.isolation}` : '', options.readOnly ? 'read only' : '']
    .filter(Boolean)
    .join(' ');

  const attempt = pool.begin(mode, async (tx) => {
    if (state.expired) throw DEADLINE;
    state.entered = true;
    const ms = Math.max(1, Math.floor(deadlineAt - now()));
    // Not awaited: postgres.js pipelines it ahead of the caller's first statement, so it costs no round trip.
    const limits = tx`select set_config('statement_timeout', ${String(ms)}, true),
      set_config('lock_timeout', ${String(ms)}, true),
      set_config('idle_in_transaction_session_timeout', ${String(ms + IDLE_SESSION_SLACK_MS)}, true)`;
    limits.catch(() => {});
    try {
      const result = await fn(trackQueries(tx, state));
      await limits;
      if (state.lost !== undefined) return abandon(state.lost);
      // Past the deadline nothing may commit, even work that finished: the caller is told it failed.
      if (state.expired) throw DEADLINE;
      state.committing = true;
      // postgres.js sends COMMIT as soon as this callback returns.
      progress.commitSent = true;
      return result;
    } catch (error) {
      if (state.lost !== undefined || isConnectionError(error)) return abandon(error);
      // A cancel request travels on its own socket: let it land before ROLLBACK frees the connection, so it
      // cannot reach whatever statement the connection runs next.
      await state.cancelling;
      if (state.lost !== undefined) return abandon(state.lost);
      throw error;
    }
  }) as Promise<T>;
  attempt.catch((error: unknown) => {
    if (isConnectionError(error)) state.lost ??= error;
  });
  // The permit is held as long as the connection: until the transaction has ended, even after an early answer.
  attempt.then(release, release);

  const answeredEarly = new Promise<never>((_, reject) => {
    answerNow = reject;
  });
  try {
    return await Promise.race([attempt, answeredEarly]);
  } finally {
    disarm();
    attempt.catch(() => {});
  }
}

/**
 * An autocommit attempt: `fn`'s statements run on a reserved connection (no BEGIN, no COMMIT, no round trip to
 * reserve it), each on its own. As in a transaction: a call still waiting for the connection is answered at the
 * deadline and never runs; the statement running then is cancelled, and the connection goes back to the pool
 * only once the cancel request has landed, so it cannot hit the next user's statement.
 */
async function runStatements<T>(
  sql: Sql,
  remaining: number,
  fn: (tx: TxSql) => Promise<T>,
  release: () => void,
): Promise<T> {
  const state = newAttemptState();
  let answerNow: ((reason: unknown) => void) | undefined;
  const disarm = armDeadline(state, remaining, (reason) => answerNow?.(reason));
  const answeredEarly = new Promise<never>((_, reject) => {
    answerNow = reject;
  });
  const work = (async () => {
    const connection = await sql.reserve().catch((error: unknown) => {
      release();
      throw error;
    });
    try {
      if (state.expired) throw DEADLINE;
      state.entered = true;
      return await fn(trackQueries(connection as unknown as TxSql, state));
    } finally {
      await state.cancelling;
      connection.release();
      release();
    }
  })();
  try {
    const result = await Promise.race([work, answeredEarly]);
    if (state.expired) throw DEADLINE;
    return result;
  } finally {
    disarm();
    work.catch(() => {});
  }
}

function newAttemptState(): AttemptState {
  return { entered: false, expired: false, lost: undefined, committing: false, queries: [], cancelling: undefined };
}

/**
 * Arms an attempt's deadline. Past it, an attempt still waiting for its connection (or for BEGIN) is answered at
 * once and aborts itself once it starts; an entered one has its running statement cancelled and, whatever it
 * does then, can no longer commit: unless its COMMIT is already on the wire, the caller is answered shortly and
 * the rollback finishes in the background. Returns what disarms it.
 */
function armDeadline(state: AttemptState, remaining: number, answer: (reason: unknown) => void): () => void {
  let graceTimer: NodeJS.Timeout | undefined;
  const deadlineTimer = setTimeout(() => {
    state.expired = true;
    if (!state.entered) {
      answer(DEADLINE);
      return;
    }
    state.cancelling = cancelRunning(state.queries);
    graceTimer = setTimeout(() => {
      if (!state.committing) answer(DEADLINE);
    }, ANSWER_GRACE_MS);
  }, remaining);
  return () => {
    clearTimeout(deadlineTimer);
    clearTimeout(graceTimer);
  };
}

/**
 * Sends one cancel request per statement running on the server, never for one not yet sent or only pipelined
 * (postgres.js would then drop it from its list of sent statements and hand its answer to the next one).
 */
function cancelRunning(queries: Query[]): Promise<unknown> | undefined {
  const cancels = queries
    .filter((q) => q.active === true && q.canceller)
    .map((q) => {
      const cancel = q.canceller!;
      q.canceller = null;
      return Promise.resolve(cancel(q)).catch(() => {});
    });
  return cancels.length > 0 ? Promise.all(cancels) : undefined;
}

/**
 * Wraps a transaction handle (or an autocommit attempt's reserved connection) so every query made through it can
 * be cancelled at the deadline, and so a statement issued after the deadline fails at once instead of getting a
 * fresh statement_timeout.
 */
function trackQueries(tx: TxSql, state: AttemptState): TxSql {
  const track = <R>(q: R): R => {
    if (q && typeof (q as { then?: unknown }).then === 'function' && 'canceller' in (q as object)) {
      // Past the deadline, or on a connection that broke (postgres.js would send it on the one it reopens).
      if (state.expired || state.lost !== undefined) {
        const refused = Promise.reject(state.lost ?? DEADLINE);
        refused.catch(() => {}); // handled: awaiting it still rejects, leaving it unawaited does not crash
        return refused as R;
      }
      state.queries.push(q as unknown as Query);
      traceStatement(q);
    }
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
          args[fnIndex] = (s: TxSql) => inner(trackQueries(s, state));
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
