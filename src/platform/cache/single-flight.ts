/** What a running load can ask about itself. */
export interface Flight {
  /** True once the key was invalidated after this flight started: its result may be stale, so cache nothing. */
  readonly invalidated: boolean;
}

export interface SingleFlight<T> {
  /** Runs `fn` for `key` unless a run for it is already under way; every concurrent caller gets that run's result. */
  run(key: string, fn: (flight: Flight) => Promise<T>): Promise<T>;
  /** Marks the key's running flight invalidated and detaches it, so the next caller starts a fresh one. */
  invalidate(key: string): void;
  invalidateAll(): void;
}

/**
 * Single flight (stampede protection): concurrent misses for one key share one load. An invalidation during
 * the load detaches it: its callers still get its answer (their reads overlapped the write), but the flight is
 * marked so nothing it found is cached, and later callers start a new load.
 * @example
 * const flights = createSingleFlight<Account | undefined>();
 * const account = await flights.run(key, async (flight) => { const a = await load(); if (!flight.invalidated) store(a); return a; });
 */
export function createSingleFlight<T>(): SingleFlight<T> {
  const running = new Map<string, { promise: Promise<T>; state: { invalidated: boolean } }>();

  return {
    run(key, fn) {
      const current = running.get(key);
      if (current) return current.promise;
      const state = { invalidated: false };
      const promise = (async () => {
        try {
          return await fn(state);
        } finally {
          // Only our own entry: after an invalidation the key may already belong to a newer flight.
          if (running.get(key)?.state === state) running.delete(key);
        }
      })();
      running.set(key, { promise, state });
      return promise;
    },
    invalidate(key) {
      const current = running.get(key);
      if (!current) return;
      current.state.invalidated = true;
      running.delete(key);
    },
    invalidateAll() {
      for (const { state } of running.values()) state.invalidated = true;
      running.clear();
    },
  };
}
