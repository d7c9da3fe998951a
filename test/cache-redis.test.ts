import { TaskCancelledError, TimeoutStrategy, timeout } from 'cockatiel';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createReadCache, type ReadCache } from '../src/platform/cache/read-cache.ts';
import { cacheKeys } from '../src/platform/cache/redis-layout.ts';
import { createRedisTier, type RedisTier, type RedisTierOptions } from '../src/platform/cache/redis-tier.ts';
import { startFaultProxy, type FaultProxy } from './support/cache-fault-proxy.ts';
import {
  closedPortUrl,
  connectRedis,
  deleteNamespace,
  nextEvent,
  uniqueNamespace,
  type TestRedisClient,
} from './support/cache-redis.ts';
import { deferred, recordingObserver } from './support/cache-testing.ts';

const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) console.log('[stratum tests] REDIS_URL not set: skipping the Redis cache tier tests');

interface View {
  id: string;
  name: string;
}
const view = (name: string): View => ({ id: '1', name });
const KEY = 'account:1';

interface Instance {
  client: TestRedisClient;
  tier: RedisTier;
  cache: ReadCache<View>;
  answers: Array<'local' | 'shared' | 'miss'>;
  errors: Array<{ operation: string; error: unknown }>;
  invalidated(key: string | undefined): Promise<void>;
}

(REDIS_URL ? describe : describe.skip)('read cache, Redis tier', () => {
  const url = REDIS_URL!;
  let raw: TestRedisClient;
  let namespace: string;
  let opened: Array<{ cache: ReadCache<View>; client: TestRedisClient }> = [];
  let proxies: FaultProxy[] = [];

  /** One app instance: its own client (connected through `viaUrl`), tier and cache, all on this test's namespace. */
  async function openInstance(
    viaUrl = url,
    tierOptions: Partial<RedisTierOptions> = {},
    client?: TestRedisClient,
  ): Promise<Instance> {
    const c = client ?? (await connectRedis(viaUrl));
    const errors: Instance['errors'] = [];
    const tier = createRedisTier({
      client: c,
      namespace,
      ttlMs: 60_000,
      onError: (error, context) => errors.push({ operation: context.operation, error }),
      ...tierOptions,
    });
    const recorded = recordingObserver();
    const cache = createReadCache<View>({
      namespace,
      ttlMs: 60_000,
      maxEntries: 100,
      shared: tier,
      observer: recorded.observer,
    });
    opened.push({ cache, client: c });
    return { client: c, tier, cache, answers: recorded.answers, errors, invalidated: recorded.invalidated };
  }

  /** An instance that listens for invalidations before the test goes on. */
  async function openSubscribed(viaUrl = url, tierOptions: Partial<RedisTierOptions> = {}): Promise<Instance> {
    const instance = await openInstance(viaUrl, tierOptions);
    await instance.tier.subscribed;
    return instance;
  }

  async function proxy(): Promise<FaultProxy> {
    const p = await startFaultProxy(url);
    proxies.push(p);
    return p;
  }

  beforeAll(async () => {
    raw = await connectRedis(url);
  });
  afterAll(async () => {
    await raw.close();
  });
  beforeEach(() => {
    namespace = uniqueNamespace();
  });
  afterEach(async () => {
    for (const { cache, client } of opened) {
      await cache.close();
      if (client.isOpen) client.destroy();
    }
    opened = [];
    for (const p of proxies) await p.close();
    proxies = [];
    await deleteNamespace(raw, namespace);
  });

  it('serves from the shared tier what another instance loaded', async () => {
    const a = await openSubscribed();
    const b = await openSubscribed();
    const loadA = vi.fn(async () => view('Person_1'));
    expect(await a.cache.getOrLoad(KEY, loadA)).toEqual(view('Person_1'));
    expect(await raw.get(cacheKeys(namespace, KEY).value)).toBe(JSON.stringify(view('Person_1')));

    const loadB = vi.fn(async () => view('not expected'));
    expect(await b.cache.getOrLoad(KEY, loadB)).toEqual(view('Person_1'));
    expect(await b.cache.getOrLoad(KEY, loadB)).toEqual(view('Person_1'));
    expect(loadB).not.toHaveBeenCalled();
    expect(b.answers).toEqual(['shared', 'local']);
    expect(a.errors).toEqual([]);
    expect(b.errors).toEqual([]);
  });

  it('sets a TTL on what it stores and does not write back uncacheable values', async () => {
    const a = await openSubscribed();
    await a.cache.getOrLoad(KEY, async () => view('Person_1'));
    const ttl = await raw.pTTL(cacheKeys(namespace, KEY).value);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);

    await a.cache.getOrLoad('account:2', async () => view('degraded'), { shouldCache: (v) => v.name !== 'degraded' });
    await a.cache.getOrLoad('account:404', async () => undefined);
    expect(await raw.exists([cacheKeys(namespace, 'account:2').value, cacheKeys(namespace, 'account:404').value])).toBe(
      0,
    );
  });

  it('drops the entry on every instance when one invalidates it', async () => {
    const a = await openSubscribed();
    const b = await openSubscribed();
    await a.cache.getOrLoad(KEY, async () => view('old'));
    await b.cache.getOrLoad(KEY, async () => view('not expected')); // B now holds 'old' in memory
    expect(b.answers).toEqual(['shared']);

    const heardByB = b.invalidated(KEY);
    await a.cache.invalidate(KEY); // after the rename committed on A
    await heardByB;

    const loadB = vi.fn(async () => view('new'));
    expect(await b.cache.getOrLoad(KEY, loadB)).toEqual(view('new'));
    expect(loadB).toHaveBeenCalledTimes(1);
    // B's load read the version after the invalidation, so its write-back counts: A finds it in Redis.
    const loadA = vi.fn(async () => view('not expected'));
    expect(await a.cache.getOrLoad(KEY, loadA)).toEqual(view('new'));
    expect(loadA).not.toHaveBeenCalled();
  });

  it('refuses a write-back whose version was read before an invalidation', async () => {
    const a = await openSubscribed();
    const b = await openSubscribed();
    const before = await a.tier.read(KEY);
    expect(before).toEqual({ found: false, version: '0' });
    await b.tier.invalidate(KEY);
    await a.tier.writeIfUnchanged(KEY, view('stale'), (before as { version: string }).version);
    expect(await raw.get(cacheKeys(namespace, KEY).value)).toBeNull();

    const after = await a.tier.read(KEY);
    expect(after).toEqual({ found: false, version: '1' });
    await a.tier.writeIfUnchanged(KEY, view('fresh'), '1');
    expect(await a.tier.read(KEY)).toEqual({ found: true, value: view('fresh') });
  });

  it('keeps a load that read before an invalidation out of Redis', async () => {
    const a = await openSubscribed();
    const b = await openSubscribed();
    const started = deferred();
    const gate = deferred<View>();
    const reading = a.cache.getOrLoad(KEY, () => {
      started.resolve();
      return gate.promise;
    });
    await started.promise; // A read the key's version, then the database
    await b.cache.invalidate(KEY); // B's write committed
    gate.resolve(view('stale'));
    expect(await reading).toEqual(view('stale'));
    expect(await raw.get(cacheKeys(namespace, KEY).value)).toBeNull();

    const c = await openSubscribed();
    const loadC = vi.fn(async () => view('fresh'));
    expect(await c.cache.getOrLoad(KEY, loadC)).toEqual(view('fresh'));
    expect(loadC).toHaveBeenCalledTimes(1);
  });

  it('is not undone by a read that reached Redis before the invalidation (script cache lost, as after a restart)', async () => {
    const a = await openSubscribed();
    await a.cache.getOrLoad(KEY, async () => view('old'));
    // EVALSHA now fails with NOSCRIPT and the invalidation is sent again as EVAL: a read issued meanwhile
    // reaches Redis first and finds 'old'.
    await raw.scriptFlush();
    const invalidating = a.cache.invalidate(KEY);
    const overlapping = a.cache.getOrLoad(KEY, async () => view('new'));
    await invalidating;
    await overlapping; // either answer is fine for a read that overlapped the write
    const load = vi.fn(async () => view('new'));
    expect(await a.cache.getOrLoad(KEY, load)).toEqual(view('new'));
  });

  it('drops its whole local tier after its subscription came back (invalidations may have been missed)', async () => {
    const p = await proxy();
    const a = await openSubscribed();
    const b = await openSubscribed(p.url);
    await b.cache.getOrLoad(KEY, async () => view('old'));
    const gap = b.invalidated(undefined);
    p.cut();
    await a.cache.invalidate(KEY); // B cannot hear this one
    p.restore();
    await gap;
    const loadB = vi.fn(async () => view('new'));
    expect(await b.cache.getOrLoad(KEY, loadB)).toEqual(view('new'));
    expect(loadB).toHaveBeenCalledTimes(1);
  });

  it('answers through the loader when nothing listens on the Redis port', async () => {
    const client = createClient({ url: await closedPortUrl() });
    client.on('error', () => {});
    void client.connect().catch(() => {}); // keeps retrying in the background, as a client does in an outage
    const a = await openInstance(url, {}, client);
    const load = vi.fn(async () => view('Person_1'));
    expect(await a.cache.getOrLoad(KEY, load)).toEqual(view('Person_1'));
    expect(await a.cache.getOrLoad(KEY, load)).toEqual(view('Person_1')); // the local tier still works
    expect(load).toHaveBeenCalledTimes(1);

    await a.cache.invalidate(KEY);
    expect(a.errors.map((e) => e.operation)).toContain('invalidate');
    const reload = vi.fn(async () => view('renamed'));
    expect(await a.cache.getOrLoad(KEY, reload)).toEqual(view('renamed'));
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it('answers through the loader once its client was closed', async () => {
    const a = await openSubscribed();
    await a.client.close();
    const load = vi.fn(async () => view('Person_1'));
    expect(await a.cache.getOrLoad(KEY, load)).toEqual(view('Person_1'));
    expect(load).toHaveBeenCalledTimes(1);
    await a.cache.invalidate(KEY); // never throws to the writer
    expect(a.errors.map((e) => e.operation)).toContain('invalidate');
  });

  it('answers through the loader when Redis hangs, after the operation timeout', async () => {
    const p = await proxy();
    const a = await openSubscribed(p.url, { policy: timeout(100, TimeoutStrategy.Aggressive) });
    p.freeze();
    const load = vi.fn(async () => view('Person_1'));
    expect(await a.cache.getOrLoad(KEY, load)).toEqual(view('Person_1'));
    expect(load).toHaveBeenCalledTimes(1);
    expect(a.errors).toHaveLength(1);
    expect(a.errors[0]).toMatchObject({ operation: 'read' });
    expect(a.errors[0]!.error).toBeInstanceOf(TaskCancelledError);
    p.thaw();
  });

  it('replays an invalidation made while Redis was unreachable before reading the key from Redis again', async () => {
    const p = await proxy();
    const a = await openSubscribed(p.url, { policy: timeout(1000, TimeoutStrategy.Aggressive) });
    await a.cache.getOrLoad(KEY, async () => view('old'));
    expect(await raw.get(cacheKeys(namespace, KEY).value)).toBe(JSON.stringify(view('old')));

    const lost = nextEvent(a.client, 'error');
    p.cut();
    await lost;
    await a.cache.invalidate(KEY); // the rename committed; Redis still holds 'old'
    expect(a.errors.map((e) => e.operation)).toContain('invalidate');

    const back = nextEvent(a.client, 'ready');
    p.restore();
    await back;
    const loadA = vi.fn(async () => view('new'));
    expect(await a.cache.getOrLoad(KEY, loadA)).toEqual(view('new'));
    expect(loadA).toHaveBeenCalledTimes(1);
    // Whether A's reload was written back depends on when the replay's own message reached A (a load that
    // overlaps an invalidation stores nothing); either way 'old' is gone from Redis.
    expect(await raw.get(cacheKeys(namespace, KEY).value)).not.toBe(JSON.stringify(view('old')));
    const b = await openSubscribed();
    expect(await b.cache.getOrLoad(KEY, async () => view('new'))).toEqual(view('new'));
  });

  it("cleans up after itself: close releases the subscriber, not the caller's client", async () => {
    const a = await openSubscribed();
    await a.cache.getOrLoad(KEY, async () => view('Person_1'));
    const subscribers = async () =>
      Number((await raw.pubSubNumSub(`${namespace}:invalidate`))[`${namespace}:invalidate`]);
    expect(await subscribers()).toBe(1);
    await a.cache.close();
    await vi.waitFor(async () => expect(await subscribers()).toBe(0));
    expect(a.client.isReady).toBe(true);
  });
});
