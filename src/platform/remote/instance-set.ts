import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { Pool } from 'undici';
import { AttemptFailure, countsAgainstInstance, describeFailure, sendAttempt } from './attempt.ts';

export interface InstanceSetOptions {
  /** Validated origins, one per instance. */
  urls: readonly string[];
  connections: number;
  breakerThreshold: number;
  halfOpenAfterMs: number;
  healthPath: string;
  healthIntervalMs: number;
  healthTimeoutMs: number;
  onInstanceChange?: (url: string, inRotation: boolean) => void;
}

/** One instance of the dependency: its keep-alive pool, its breaker, the user calls it has in flight. */
export interface Instance {
  readonly url: string;
  readonly pool: Pool;
  readonly breaker: CircuitBreakerPolicy;
  outstanding: number;
  lastError: string | undefined;
  /** A health check is running: the next tick skips this instance. */
  checking: boolean;
  /** As last told to `onInstanceChange`. */
  inRotation: boolean;
}

export interface InstanceState {
  url: string;
  /** Whether user calls may go to it: its breaker is closed. */
  inRotation: boolean;
  breaker: 'closed' | 'open' | 'half-open' | 'isolated';
  /** User calls in flight on it (health checks not counted). */
  outstanding: number;
  /** The last failure it was charged with. */
  lastError?: string;
}

export interface InstanceSet {
  /**
   * The instance in rotation with the fewest calls in flight, ties in turn; one not in `tried` when there is
   * one. Undefined when none is in rotation.
   */
  pick(tried: ReadonlySet<Instance>): Instance | undefined;
  /** Whether an instance in rotation is not in `tried`. */
  hasUntried(tried: ReadonlySet<Instance>): boolean;
  /** Runs one attempt on `instance` through its breaker, counted as in flight while it runs. */
  run<T>(instance: Instance, attempt: () => Promise<T>): Promise<T>;
  state(): InstanceState[];
  /** Stops the health checks (aborting those running) and closes every pool. */
  close(): Promise<void>;
}

const BREAKER_NAMES = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
} as const;

/**
 * The instances of one dependency with their pools and breakers, balancing and background health checks. A
 * check of an instance in rotation only ever charges it (a success does not wipe out failed user calls); the
 * check of an instance out of rotation goes through its breaker, so once `halfOpenAfterMs` has passed it is
 * the half-open trial that puts the instance back.
 * @example const set = createInstanceSet({ urls, connections: 8, breakerThreshold: 3, halfOpenAfterMs: 1000,
 *            healthPath: '/healthz', healthIntervalMs: 500, healthTimeoutMs: 250 });
 *          const instance = set.pick(new Set());
 */
export function createInstanceSet(options: InstanceSetOptions): InstanceSet {
  let closed = false;
  let closing: Promise<void> | undefined;
  const stopChecks = new AbortController();
  const instances: Instance[] = options.urls.map((url) => {
    const breaker = circuitBreaker(handleWhen(countsAgainstInstance), {
      halfOpenAfter: options.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(options.breakerThreshold),
    });
    const instance: Instance = {
      url,
      pool: new Pool(url, { connections: options.connections }),
      breaker,
      outstanding: 0,
      lastError: undefined,
      checking: false,
      inRotation: true,
    };
    breaker.onStateChange(() => {
      const now = breaker.state === CircuitState.Closed;
      if (now === instance.inRotation) return;
      instance.inRotation = now;
      options.onInstanceChange?.(url, now);
    });
    return instance;
  });
  const inRotation = (instance: Instance) => !closed && instance.breaker.state === CircuitState.Closed;

  let cursor = 0;
  const hasUntried = (tried: ReadonlySet<Instance>) => instances.some((i) => inRotation(i) && !tried.has(i));
  const pick = (tried: ReadonlySet<Instance>) => {
    const skipTried = hasUntried(tried);
    let best: Instance | undefined;
    let bestIndex = 0;
    for (let k = 0; k < instances.length; k++) {
      const index = (cursor + k) % instances.length;
      const candidate = instances[index]!;
      if (!inRotation(candidate) || (skipTried && tried.has(candidate))) continue;
      if (best === undefined || candidate.outstanding < best.outstanding) {
        best = candidate;
        bestIndex = index;
      }
    }
    // The search starts after the last one picked: among equals, each gets its turn.
    if (best) cursor = (bestIndex + 1) % instances.length;
    return best;
  };

  const run = async <T>(instance: Instance, attempt: () => Promise<T>): Promise<T> => {
    instance.outstanding++;
    try {
      return await instance.breaker.execute(attempt);
    } catch (error) {
      if (countsAgainstInstance(error)) instance.lastError = describeFailure(error);
      throw error;
    } finally {
      instance.outstanding--;
    }
  };

  /** A check that fails in any way (a bad body included) is a failure, or a half-open trial would pass. */
  const probe = async (instance: Instance) => {
    try {
      const answer = await sendAttempt(
        instance.pool,
        instance.url,
        { method: 'GET', path: options.healthPath, signal: stopChecks.signal },
        options.healthTimeoutMs,
        false,
      );
      if (answer.status < 200 || answer.status > 299)
        throw new AttemptFailure('transient', instance.url, `health check answered ${answer.status}`);
    } catch (error) {
      if (countsAgainstInstance(error)) throw error;
      throw new AttemptFailure('transient', instance.url, `health check: ${describeFailure(error)}`, { cause: error });
    }
  };

  const check = async (instance: Instance) => {
    if (instance.checking || closed) return;
    instance.checking = true;
    try {
      if (instance.breaker.state === CircuitState.Closed) {
        const failure = await probe(instance).then(
          () => undefined,
          (error: unknown) => error,
        );
        // Charged through the breaker, so it adds up with failed user calls; unless those opened it meanwhile.
        if (failure !== undefined && !closed && instance.breaker.state === CircuitState.Closed) {
          instance.lastError = describeFailure(failure);
          await instance.breaker.execute(() => Promise.reject(failure)).catch(() => undefined);
        }
      } else {
        // Open: refused (BrokenCircuitError) until halfOpenAfterMs has passed, then this probe is the trial.
        await instance.breaker
          .execute(() => probe(instance))
          .catch((error: unknown) => {
            if (countsAgainstInstance(error)) instance.lastError = describeFailure(error);
          });
      }
    } finally {
      instance.checking = false;
    }
  };

  const timer = setInterval(() => {
    for (const instance of instances) void check(instance);
  }, options.healthIntervalMs);
  timer.unref();

  return {
    pick,
    hasUntried,
    run,
    state: () =>
      instances.map((i) => ({
        url: i.url,
        inRotation: inRotation(i),
        breaker: BREAKER_NAMES[i.breaker.state],
        outstanding: i.outstanding,
        ...(i.lastError === undefined ? {} : { lastError: i.lastError }),
      })),
    close() {
      if (closing) return closing;
      closed = true;
      clearInterval(timer);
      stopChecks.abort();
      // close() lets calls in flight finish (each is bounded by its attempt timeout), then ends the sockets.
      closing = Promise.all(instances.map((i) => i.pool.close())).then(() => undefined);
      return closing;
    },
  };
}
