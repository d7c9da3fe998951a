import { LRUCache } from 'lru-cache';

/** The in-process tier: a bounded LRU whose entries expire `ttlMs` after they were written. */
export interface LocalTier<V> {
  /** The entry (boxed, so `null` can be a cached value), or undefined when absent or expired. */
  get(key: string): { value: V } | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
  clear(): void;
  readonly size: number;
}

export interface LocalTierOptions {
  maxEntries: number;
  ttlMs: number;
  /** Monotonic milliseconds for expiry; defaults to lru-cache's own `performance.now()`. */
  now?: () => number;
}

/**
 * An LRU with a TTL (lru-cache). Reading does not extend an entry's life, so a value is never older than
 * `ttlMs`; past `maxEntries` the least recently used entry goes.
 * @example
 * const local = createLocalTier<Account>({ maxEntries: 10_000, ttlMs: 30_000 });
 * local.set('account:1', account); local.get('account:1')?.value;
 */
export function createLocalTier<V>(options: LocalTierOptions): LocalTier<V> {
  const lru = new LRUCache<string, { value: V }>({
    max: options.maxEntries,
    ttl: options.ttlMs,
    // An injected clock is read on every check; lru-cache's 1 ms debounce would need a timer and hide it.
    ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
  });
  return {
    get: (key) => lru.get(key),
    set: (key, value) => {
      lru.set(key, { value });
    },
    delete: (key) => {
      lru.delete(key);
    },
    clear: () => lru.clear(),
    get size() {
      return lru.size;
    },
  };
}
