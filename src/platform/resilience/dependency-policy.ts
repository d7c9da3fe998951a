import {
  ConsecutiveBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  wrap,
  type CircuitState,
} from 'cockatiel';

export interface DependencyPolicyOptions {
  /** Longest wait for one attempt; the attempt's AbortSignal fires then. */
  attemptTimeoutMs: number;
  /** Extra attempts after a transient failure. */
  retries: number;
  /** Consecutive failures that open the breaker. */
  breakerThreshold: number;
  /** How long an open breaker refuses calls before letting one through. */
  halfOpenAfterMs: number;
  /** Which errors are worth another attempt (connection loss, timeouts); others fail at once. */
  isTransient: (error: unknown) => boolean;
  onStateChange?: (state: CircuitState) => void;
}

export interface DependencyPolicy {
  /**
   * Runs `fn` under timeout, retry and circuit breaker; `fn` must honour the signal it gets, which also
   * aborts with `signal` (the caller gave up).
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/**
 * One policy per dependency, built once and shared: a timeout per attempt, retries with exponential backoff
 * for transient errors, and a consecutive-failure circuit breaker around both so a failing dependency is
 * left alone instead of being retried by every request.
 * @example const search = createDependencyPolicy({ attemptTimeoutMs: 200, retries: 1, breakerThreshold: 5, halfOpenAfterMs: 5000, isTransient });
 *          const hits = await search.execute((signal) => findNotes(sql, term, signal));
 */
export function createDependencyPolicy(options: DependencyPolicyOptions): DependencyPolicy {
  // abortOnReturn: false: a finished attempt needs no abort (each abort builds a DOMException with a stack).
  const attemptTimeout = timeout(options.attemptTimeoutMs, {
    strategy: TimeoutStrategy.Aggressive,
    abortOnReturn: false,
  });
  const retrying = retry(handleWhen(options.isTransient), {
    maxAttempts: options.retries,
    backoff: new ExponentialBackoff({ initialDelay: 10, maxDelay: 100 }),
  });
  const breaker = circuitBreaker(
    handleWhen(() => true),
    {
      halfOpenAfter: options.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(options.breakerThreshold),
    },
  );
  if (options.onStateChange) breaker.onStateChange(options.onStateChange);
  const policy = wrap(breaker, retrying, attemptTimeout);
  return {
    // A per-call parent signal: without one, cockatiel hangs every call's listener on one shared signal.
    execute: (fn, signal) =>
      policy.execute(({ signal: attempt }) => fn(attempt), signal ?? new AbortController().signal),
  };
}
