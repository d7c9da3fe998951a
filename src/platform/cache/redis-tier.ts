import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  TimeoutStrategy,
  circuitBreaker,
  handleAll,
  timeout,
  wrap,
} from 'cockatiel';
import { createPendingInvalidations } from './pending-invalidations.ts';
import type { RedisTierClient } from './redis-client.ts';
import { INVALIDATE, WRITE_IF_UNCHANGED, cacheKeys, invalidationChannel, runScript } from './redis-layout.ts';
import { MISS_WITHOUT_WRITE_BACK, type SharedRead, type SharedTier } from './shared-tier.ts';

export type RedisTierOperation = 'read' | 'write' | 'invalidate' | 'subscribe' | 'decode';

/** How every Redis call is bounded; a cockatiel policy (or anything with this `execute`) fits. */
export interface RedisTierPolicy {
  execute<T>(fn: () => Promise<T>): Promise<T>;
}

export interface RedisTierOptions {
  /** A node-redis client the caller created, connects and closes. */
  client: RedisTierClient;
  namespace: string;
  ttlMs: number;
  /** Every failure of the tier; none reaches a reader or a writer. Default: ignored. */
  onError?: (error: unknown, context: { operation: RedisTierOperation; key?: string }) => void;
  /** Default: each call times out after `operationTimeoutMs` (250), inside a breaker that opens for 1 s after 5 failures in a row. */
  policy?: RedisTierPolicy;
  operationTimeoutMs?: number;
  /** How long a key's version outlives its last invalidation; must exceed the longest load. Default 1 h. */
  versionTtlMs?: number;
  /** Invalidations kept for replay while Redis is unreachable; past it the oldest is dropped. Default 10,000. */
  maxPendingInvalidations?: number;
  /** Default JSON: values must survive a JSON round trip (a Date comes back as a string). */
  codec?: { encode(value: unknown): string; decode(text: string): unknown };
}

export interface RedisTier extends SharedTier {
  /** Settles once this instance hears invalidations (never rejects; stays pending while Redis is unreachable). */
  readonly subscribed: Promise<void>;
}

/**
 * The shared tier on Redis: values as JSON with a TTL; a version per key so a load that read the database
 * before an invalidation cannot store its value after it; invalidation = bump the version, drop the value and
 * PUBLISH the key on `<namespace>:invalidate`, which a second connection (`client.duplicate()`) listens to.
 * When Redis is unreachable reads miss, writes are skipped and invalidations are kept and replayed once it is
 * back; a key with an invalidation pending is not read from Redis meanwhile.
 * @example
 * const client = createClient({ url }); client.on('error', log); await client.connect();
 * const shared = createRedisTier({ client, namespace: 'stratum:notes', ttlMs: 30_000, onError: (e, c) => log.warn({ err: e, ...c }) });
 * const cache = createReadCache<Note>({ namespace: 'stratum:notes', ttlMs: 30_000, maxEntries: 10_000, shared });
 */
export function createRedisTier(options: RedisTierOptions): RedisTier {
  const { client, namespace, ttlMs } = options;
  const channel = invalidationChannel(namespace);
  const report = options.onError ?? (() => {});
  const codec = options.codec ?? {
    encode: (value: unknown) => JSON.stringify(value),
    decode: (text: string) => JSON.parse(text) as unknown,
  };
  const policy = options.policy ?? defaultPolicy(options.operationTimeoutMs ?? 250);
  const versionTtl = String(options.versionTtlMs ?? 3_600_000);
  let listener: ((key: string | undefined) => void) | undefined;
  let closed = false;
  let subscribedOnce = false;

  const fail = (error: unknown, operation: RedisTierOperation, key: string) => {
    // An open breaker only says "still failing"; the failures that opened it were reported.
    if (!(error instanceof BrokenCircuitError)) report(error, { operation, key });
  };

  async function sendInvalidation(key: string): Promise<boolean> {
    if (!client.isReady) {
      report(new Error('Redis is not connected: the invalidation is kept for replay'), {
        operation: 'invalidate',
        key,
      });
      return false;
    }
    const keys = cacheKeys(namespace, key);
    try {
      await policy.execute(() => runScript(client, INVALIDATE, [keys.value, keys.version], [channel, key, versionTtl]));
      return true;
    } catch (error) {
      report(error, { operation: 'invalidate', key });
      return false;
    }
  }

  const pending = createPendingInvalidations({
    max: options.maxPendingInvalidations ?? 10_000,
    send: sendInvalidation,
    canSend: () => !closed && client.isReady,
    onDropped: (key) =>
      report(
        new Error('too many invalidations pending: the oldest is dropped; Redis may serve its old value until the TTL'),
        { operation: 'invalidate', key },
      ),
  });
  const onClientReady = () => {
    void pending.replay();
  };
  client.on('ready', onClientReady);

  const subscriber = client.duplicate();
  subscriber.on('error', (error) => report(error, { operation: 'subscribe' }));
  subscriber.on('ready', () => {
    // node-redis resubscribes before 'ready': from here on nothing is missed, but messages before may have been.
    if (subscribedOnce) listener?.(undefined);
    void pending.replay();
  });
  const subscribed = subscriber
    .connect()
    .then(() => subscriber.subscribe(channel, (key) => listener?.(key)))
    // Whatever was cached before this point was cached deaf to invalidations.
    .then(() => {
      subscribedOnce = true;
      listener?.(undefined);
    })
    .catch((error: unknown) => {
      if (!closed) report(error, { operation: 'subscribe' });
    });

  return {
    namespace,
    subscribed,

    async read(key: string): Promise<SharedRead> {
      if (closed || !client.isReady || !(await pending.settle(key))) return MISS_WITHOUT_WRITE_BACK;
      const keys = cacheKeys(namespace, key);
      let reply: Array<string | null>;
      try {
        reply = await policy.execute(() => client.mGet([keys.value, keys.version]));
      } catch (error) {
        fail(error, 'read', key);
        return MISS_WITHOUT_WRITE_BACK;
      }
      const [text, version] = reply;
      if (text != null) {
        try {
          return { found: true, value: codec.decode(text) };
        } catch (error) {
          // A miss instead: the load's value replaces what could not be decoded.
          report(error, { operation: 'decode', key });
        }
      }
      return { found: false, version: version ?? '0' };
    },

    async writeIfUnchanged(key: string, value: unknown, version: string): Promise<void> {
      if (closed || !client.isReady) return;
      const keys = cacheKeys(namespace, key);
      try {
        const text = codec.encode(value);
        await policy.execute(() =>
          runScript(client, WRITE_IF_UNCHANGED, [keys.value, keys.version], [version, text, String(ttlMs)]),
        );
      } catch (error) {
        fail(error, 'write', key);
      }
    },

    async invalidate(key: string): Promise<void> {
      if (!closed && !(await sendInvalidation(key))) pending.keep(key);
    },

    onInvalidation(next) {
      listener = next;
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      listener = undefined;
      client.off('ready', onClientReady);
      // destroy, not close: a subscriber has nothing worth waiting for, and close() would wait out an outage.
      if (subscriber.isOpen) subscriber.destroy();
    },
  };
}

function defaultPolicy(timeoutMs: number): RedisTierPolicy {
  return wrap(
    circuitBreaker(handleAll, { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(5) }),
    timeout(timeoutMs, TimeoutStrategy.Aggressive),
  );
}
