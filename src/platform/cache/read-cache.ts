import { AppError } from '../errors/app-error.ts';
import { createLocalTier } from './local-tier.ts';
import type { SharedTier } from './shared-tier.ts';
import { createSingleFlight, type Flight } from './single-flight.ts';

export interface ReadCache<V> {
  /**
   * Cache-aside: returns the cached value or runs `load` once for all concurrent callers of the key (single
   * flight), caching its result unless it is undefined or `shouldCache(value)` is false. The first caller's
   * `load` and `shouldCache` serve everyone who joins its flight. A load's error reaches every joined caller
   * and is not cached.
   */
  getOrLoad(
    key: string,
    load: (signal: AbortSignal) => Promise<V | undefined>,
    options?: { shouldCache?: (value: V) => boolean },
  ): Promise<V | undefined>;
  /**
   * Call AFTER the writing transaction committed. Drops the key here, in the shared tier and in every other
   * instance; a load that started before this call does not put its (possibly stale) value back into any tier.
   * Never rejects: a shared-tier failure is reported by the tier and the invalidation replayed later.
   */
  invalidate(key: string): Promise<void>;
  /**
   * Drops the key, or every key (`undefined`), in this instance only, marking running loads of it so they
   * cache nothing: for a change another instance made and this one heard of (see event-invalidation.ts).
   */
  forget(key: string | undefined): void;
  /** Drops everything, aborts running loads' signals, closes the shared tier (not its client). */
  close(): Promise<void>;
}

/** Called once per `getOrLoad` with where its answer came from; a failed load counts as a miss. */
export interface ReadCacheObserver {
  onHit?(tier: 'local' | 'shared'): void;
  onMiss?(): void;
  /**
   * The shared tier told this instance to drop a key (every instance hears every invalidation, its own
   * included), or every key (`undefined`) after a gap in which invalidations may have been missed.
   */
  onSharedInvalidation?(key: string | undefined): void;
  /** This instance dropped a key (or every key, `undefined`) it was told is stale: `invalidate` or `forget`. */
  onInvalidation?(key: string | undefined): void;
}

export interface ReadCacheOptions {
  namespace: string;
  /** Lifetime of an entry from when it was stored; 0 stores nothing (single flight still applies). */
  ttlMs: number;
  /** Entries kept in this process; past it the least recently used goes. */
  maxEntries: number;
  shared?: SharedTier;
  observer?: ReadCacheObserver;
  /** Monotonic milliseconds for the local TTL; defaults to lru-cache's own clock. */
  now?: () => number;
}

type Answer<V> = { value: V | undefined; from: 'shared' | 'loader' };

/**
 * A read cache: an in-process LRU with TTL in front of an optional shared tier, single flight per key, and
 * invalidation that a load running across it cannot undo (see docs/decisions/0008-read-cache.md).
 * @example
 * const cache = createReadCache<Note>({ namespace: 'stratum:notes', ttlMs: 30_000, maxEntries: 10_000, shared });
 * const view = await cache.getOrLoad(`account:${id}`, (signal) => loadAccountView(sql, id, signal), { shouldCache: (v) => !v.degraded });
 * await transaction({}, (tx) => renameAccount(tx, id, name)); await cache.invalidate(`account:${id}`);
 */
export function createReadCache<V>(options: ReadCacheOptions): ReadCache<V> {
  const { namespace, shared, observer } = options;
  if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs < 0)
    throw new TypeError(`ttlMs must be an integer >= 0, got ${options.ttlMs}`);
  if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 1)
    throw new TypeError(`maxEntries must be an integer >= 1, got ${options.maxEntries}`);
  if (shared && shared.namespace !== namespace)
    throw new TypeError(`the shared tier's namespace ${shared.namespace} is not ${namespace}`);

  const storing = options.ttlMs > 0;
  const local = createLocalTier<V>({
    maxEntries: options.maxEntries,
    ttlMs: options.ttlMs,
    ...(options.now ? { now: options.now } : {}),
  });
  const flights = createSingleFlight<Answer<V>>();
  const closing = new AbortController();

  // Both halves matter: the entry may be stale, and a running load may be about to store a stale value.
  const drop = (key: string | undefined) => {
    if (key === undefined) {
      flights.invalidateAll();
      local.clear();
    } else {
      flights.invalidate(key);
      local.delete(key);
    }
  };
  shared?.onInvalidation((key) => {
    drop(key);
    observer?.onSharedInvalidation?.(key);
  });

  async function loadThroughTiers(
    key: string,
    load: (signal: AbortSignal) => Promise<V | undefined>,
    shouldCache: ((value: V) => boolean) | undefined,
    flight: Flight,
  ): Promise<Answer<V>> {
    // The version is read before the load reads the database: an invalidation after that read makes it stale.
    const found = shared && storing ? await shared.read(key) : undefined;
    if (found?.found) {
      const value = found.value as V;
      if (!flight.invalidated) local.set(key, value);
      return { value, from: 'shared' };
    }
    const value = await load(closing.signal);
    if (value === undefined || !storing || flight.invalidated || !(shouldCache?.(value) ?? true))
      return { value, from: 'loader' };
    local.set(key, value);
    if (shared && found?.version != null) await shared.writeIfUnchanged(key, value, found.version);
    return { value, from: 'loader' };
  }

  return {
    async getOrLoad(key, load, loadOptions) {
      if (closing.signal.aborted) throw new AppError('SERVER.SHUTTING_DOWN', `the ${namespace} read cache is closed`);
      const hit = local.get(key);
      if (hit) {
        observer?.onHit?.('local');
        return hit.value;
      }
      let answer: Answer<V>;
      try {
        answer = await flights.run(key, (flight) => loadThroughTiers(key, load, loadOptions?.shouldCache, flight));
      } catch (error) {
        observer?.onMiss?.();
        throw error;
      }
      if (answer.from === 'shared') observer?.onHit?.('shared');
      else observer?.onMiss?.();
      return answer.value;
    },

    async invalidate(key) {
      drop(key);
      observer?.onInvalidation?.(key);
      if (!shared) return;
      await shared.invalidate(key);
      // A read of the shared tier that Redis answered before the invalidation may still be on its way back to
      // this process; dropping again after the invalidation completed marks such a flight, so it stores nothing.
      drop(key);
    },

    forget(key) {
      drop(key);
      observer?.onInvalidation?.(key);
    },

    async close() {
      if (closing.signal.aborted) return;
      closing.abort(new AppError('SERVER.SHUTTING_DOWN', `the ${namespace} read cache closed`));
      drop(undefined);
      await shared?.close();
    },
  };
}
