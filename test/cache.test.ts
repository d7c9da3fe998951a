import { describe, expect, it, vi } from 'vitest';
import { createReadCache, type ReadCacheOptions } from '../src/platform/cache/read-cache.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';
import { deferred, recordingObserver } from './support/cache-testing.ts';

interface View {
  id: string;
  name: string;
}

const view = (id: string, name = `Person_${id}`): View => ({ id, name });

function cacheWith(overrides: Partial<ReadCacheOptions> = {}) {
  const recorded = recordingObserver();
  const cache = createReadCache<View>({
    namespace: 'test',
    ttlMs: 60_000,
    maxEntries: 100,
    observer: recorded.observer,
    ...overrides,
  });
  return { cache, answers: recorded.answers };
}

describe('read cache, local tier', () => {
  it('loads on a miss and answers the next read from memory', async () => {
    const { cache, answers } = cacheWith();
    const load = vi.fn(async () => view('1'));
    expect(await cache.getOrLoad('account:1', load)).toEqual(view('1'));
    expect(await cache.getOrLoad('account:1', load)).toEqual(view('1'));
    expect(load).toHaveBeenCalledTimes(1);
    expect(answers).toEqual(['miss', 'local']);
    // Keys are independent.
    const other = vi.fn(async () => view('2'));
    expect(await cache.getOrLoad('account:2', other)).toEqual(view('2'));
    expect(other).toHaveBeenCalledTimes(1);
  });

  it('loads again once an entry outlived its TTL (injected clock)', async () => {
    let now = 1_000;
    const { cache } = cacheWith({ ttlMs: 100, now: () => now });
    const load = vi.fn(async () => view('1'));
    await cache.getOrLoad('account:1', load);
    now += 100;
    await cache.getOrLoad('account:1', load);
    expect(load).toHaveBeenCalledTimes(1);
    now += 1;
    await cache.getOrLoad('account:1', load);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('lets entries expire on its default clock too', async () => {
    const { cache } = cacheWith({ ttlMs: 5 });
    const load = vi.fn(async () => view('1'));
    await cache.getOrLoad('account:1', load);
    // No duration is asserted: only that the entry goes by itself.
    await vi.waitFor(
      async () => {
        await cache.getOrLoad('account:1', load);
        expect(load.mock.calls.length).toBeGreaterThan(1);
      },
      { timeout: 5_000, interval: 10 },
    );
  });

  it('evicts the least recently used entry past maxEntries', async () => {
    const { cache } = cacheWith({ maxEntries: 2 });
    const loads = new Map<string, number>();
    const loadOf = (key: string) => async () => {
      loads.set(key, (loads.get(key) ?? 0) + 1);
      return view(key);
    };
    await cache.getOrLoad('a', loadOf('a'));
    await cache.getOrLoad('b', loadOf('b'));
    await cache.getOrLoad('a', loadOf('a')); // a is now the most recently used
    await cache.getOrLoad('c', loadOf('c')); // evicts b
    await cache.getOrLoad('a', loadOf('a'));
    await cache.getOrLoad('c', loadOf('c'));
    expect(Object.fromEntries(loads)).toEqual({ a: 1, b: 1, c: 1 });
    await cache.getOrLoad('b', loadOf('b'));
    expect(loads.get('b')).toBe(2);
  });

  it('runs one load for 50 concurrent misses of a key (single flight)', async () => {
    const { cache, answers } = cacheWith();
    const gate = deferred<View>();
    const load = vi.fn(() => gate.promise);
    const readers = Array.from({ length: 50 }, () => cache.getOrLoad('account:1', load));
    gate.resolve(view('1'));
    const results = await Promise.all(readers);
    expect(load).toHaveBeenCalledTimes(1);
    expect(results.every((r) => r === results[0])).toBe(true);
    expect(results[0]).toEqual(view('1'));
    expect(answers.filter((a) => a === 'miss')).toHaveLength(50);
    await cache.getOrLoad('account:1', load);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('does not cache a load that an invalidation overtook, and the next read loads again', async () => {
    const { cache } = cacheWith();
    const started = deferred();
    const gate = deferred<View>();
    const stale = vi.fn(() => {
      started.resolve();
      return gate.promise;
    });
    const before = cache.getOrLoad('account:1', stale);
    await started.promise;

    await cache.invalidate('account:1'); // the write committed while the load was reading

    // A reader arriving after the invalidation does not join the stale flight.
    const fresh = vi.fn(async () => view('1', 'renamed'));
    const after = cache.getOrLoad('account:1', fresh);
    gate.resolve(view('1', 'old'));

    expect(await before).toEqual(view('1', 'old')); // an answer for a read that overlapped the write
    expect(await after).toEqual(view('1', 'renamed'));
    expect(stale).toHaveBeenCalledTimes(1);
    expect(fresh).toHaveBeenCalledTimes(1);
    const again = vi.fn(async () => view('1', 'unexpected'));
    expect(await cache.getOrLoad('account:1', again)).toEqual(view('1', 'renamed'));
    expect(again).not.toHaveBeenCalled();
  });

  it('drops a cached entry on invalidate', async () => {
    const { cache } = cacheWith();
    await cache.getOrLoad('account:1', async () => view('1', 'old'));
    await cache.invalidate('account:1');
    const load = vi.fn(async () => view('1', 'new'));
    expect(await cache.getOrLoad('account:1', load)).toEqual(view('1', 'new'));
    expect(load).toHaveBeenCalledTimes(1);
    await cache.invalidate('account:never-cached'); // nothing to drop is fine
  });

  it('forgets a key heard of from elsewhere, a load running across it included, or every key', async () => {
    const { cache } = cacheWith();
    await cache.getOrLoad('account:2', async () => view('2', 'old'));
    const started = deferred();
    const gate = deferred<View>();
    const running = cache.getOrLoad('account:1', () => {
      started.resolve();
      return gate.promise;
    });
    await started.promise;

    cache.forget('account:1'); // another instance's write, heard while this load was reading
    gate.resolve(view('1', 'old'));
    expect(await running).toEqual(view('1', 'old'));
    const load1 = vi.fn(async () => view('1', 'new'));
    expect(await cache.getOrLoad('account:1', load1)).toEqual(view('1', 'new'));
    expect(load1).toHaveBeenCalledTimes(1);

    cache.forget(undefined); // events may have been missed
    const load2 = vi.fn(async () => view('2', 'new'));
    expect(await cache.getOrLoad('account:2', load2)).toEqual(view('2', 'new'));
    expect(load2).toHaveBeenCalledTimes(1);
  });

  it('does not cache undefined or what shouldCache refuses', async () => {
    const { cache } = cacheWith();
    const missing = vi.fn(async () => undefined);
    expect(await cache.getOrLoad('account:404', missing)).toBeUndefined();
    expect(await cache.getOrLoad('account:404', missing)).toBeUndefined();
    expect(missing).toHaveBeenCalledTimes(2);

    const degraded = vi.fn(async () => view('1', 'degraded'));
    const shouldCache = (v: View) => v.name !== 'degraded';
    expect(await cache.getOrLoad('account:1', degraded, { shouldCache })).toEqual(view('1', 'degraded'));
    expect(await cache.getOrLoad('account:1', degraded, { shouldCache })).toEqual(view('1', 'degraded'));
    expect(degraded).toHaveBeenCalledTimes(2);

    const whole = vi.fn(async () => view('1'));
    await cache.getOrLoad('account:1', whole, { shouldCache });
    await cache.getOrLoad('account:1', whole, { shouldCache });
    expect(whole).toHaveBeenCalledTimes(1);
  });

  it('caches null (a value), unlike undefined (no value)', async () => {
    const cache = createReadCache<View | null>({ namespace: 'test', ttlMs: 60_000, maxEntries: 10 });
    const load = vi.fn(async () => null);
    expect(await cache.getOrLoad('account:1', load)).toBeNull();
    expect(await cache.getOrLoad('account:1', load)).toBeNull();
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('gives a load error to every joined caller and caches nothing', async () => {
    const { cache } = cacheWith();
    const gate = deferred<View>();
    const failing = vi.fn(() => gate.promise);
    const readers = Array.from({ length: 5 }, () => cache.getOrLoad('account:1', failing));
    gate.reject(new Error('database down'));
    const settled = await Promise.allSettled(readers);
    expect(settled.map((s) => s.status)).toEqual(Array(5).fill('rejected'));
    expect((settled[0] as PromiseRejectedResult).reason).toMatchObject({ message: 'database down' });
    expect(failing).toHaveBeenCalledTimes(1);

    const working = vi.fn(async () => view('1'));
    expect(await cache.getOrLoad('account:1', working)).toEqual(view('1'));
    expect(working).toHaveBeenCalledTimes(1);
  });

  it('stores nothing with ttlMs 0 but still shares concurrent loads', async () => {
    const { cache } = cacheWith({ ttlMs: 0 });
    const gate = deferred<View>();
    const load = vi.fn(() => gate.promise);
    const both = Promise.all([cache.getOrLoad('account:1', load), cache.getOrLoad('account:1', load)]);
    gate.resolve(view('1'));
    await both;
    expect(load).toHaveBeenCalledTimes(1);
    await cache.getOrLoad('account:1', load);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('aborts running loads on close and refuses reads after it', async () => {
    const { cache } = cacheWith();
    const seen = deferred<AbortSignal>();
    const running = cache.getOrLoad('account:1', (signal) => {
      seen.resolve(signal);
      return new Promise<View>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    const signal = await seen.promise;
    await cache.close();
    expect(signal.aborted).toBe(true);
    await expect(running).rejects.toSatisfy((e) => isAppError(e, 'SERVER.SHUTTING_DOWN'));
    await expect(cache.getOrLoad('account:1', async () => view('1'))).rejects.toSatisfy((e) =>
      isAppError(e, 'SERVER.SHUTTING_DOWN'),
    );
    await cache.close(); // twice is fine
  });

  it('rejects options that cannot work', () => {
    expect(() => createReadCache({ namespace: 'test', ttlMs: -1, maxEntries: 10 })).toThrow(/ttlMs/);
    expect(() => createReadCache({ namespace: 'test', ttlMs: 1000, maxEntries: 0 })).toThrow(/maxEntries/);
  });
});
