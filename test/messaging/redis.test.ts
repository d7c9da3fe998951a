import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Broker, OutboxEvent, Outcome, Subscription } from '../../src/platform/messaging/broker.ts';
import { planLeases } from '../../src/platform/messaging/redis/lease-plan.ts';
import { createRedisStreamsBroker } from '../../src/platform/messaging/redis/redis-streams-broker.ts';
import { describeBrokerContract, event, eventually } from './contract.ts';

const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) console.log('[stratum tests] REDIS_URL not set: skipping the Redis Streams broker tests');

const ACK: Outcome = { kind: 'ack' };
const n = (e: OutboxEvent) => (e.payload as { n: number }).n;

describe('redis streams: fair share of partition leases', () => {
  const busy = (...ps: number[]) => new Set(ps);

  it('lets the partitions beyond its share go when another consumer joins', () => {
    expect(
      planLeases({
        partitions: 8,
        liveConsumers: 2,
        maxPartitions: 8,
        serving: [7, 0, 1, 2, 3, 4, 5, 6],
        busy: busy(0, 1, 2, 3, 4, 5, 6, 7),
      }),
    ).toEqual({ release: [4, 5, 6, 7], candidates: [], want: 0 });
  });

  it('tries the free partitions until it has its share, rounding the share up so none is left unserved', () => {
    expect(
      planLeases({ partitions: 8, liveConsumers: 3, maxPartitions: 8, serving: [0], busy: busy(0, 1, 2, 5) }),
    ).toEqual({ release: [], candidates: [3, 4, 6, 7], want: 2 });
  });

  it('keeps to maxPartitions', () => {
    expect(planLeases({ partitions: 8, liveConsumers: 1, maxPartitions: 2, serving: [], busy: busy() }).want).toBe(2);
  });
});

(REDIS_URL ? describe : describe.skip)('redis streams broker', () => {
  const url = REDIS_URL!;
  const namespaces = new Set<string>();
  const make = (namespace: string, options: { claimIdleMs?: number } = {}) => {
    namespaces.add(namespace);
    return createRedisStreamsBroker({ url, namespace, leaseMs: 1000, claimIdleMs: 500, ...options });
  };

  afterAll(async () => {
    const client = createClient({ url });
    await client.connect();
    try {
      for (const namespace of namespaces) {
        for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 500 })) {
          if (keys.length > 0) await client.del(keys);
        }
      }
    } finally {
      client.destroy();
    }
  });

  describeBrokerContract({ name: 'redis', make: (namespace) => make(namespace) });

  describe('beyond the contract', () => {
    const opened: Broker[] = [];
    const subscriptions: Subscription[] = [];
    const open = async (namespace: string, options: { claimIdleMs?: number } = {}) => {
      const broker = await make(namespace, options);
      opened.push(broker);
      return broker;
    };
    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.stop().catch(() => {})));
      await Promise.all(opened.splice(0).map((b) => b.close().catch(() => {})));
    });

    it('gives a group created after events were published those events too (groups start at 0, not $)', async () => {
      const broker = await open(`r${randomUUID().slice(0, 8)}`);
      const events = Array.from({ length: 10 }, (_, i) => event(`k${i % 3}`, i));
      await broker.publish(events);
      const got: OutboxEvent[] = [];
      subscriptions.push(
        await broker.subscribe('late', {
          handle: async (d) => {
            got.push(d.event);
            return ACK;
          },
        }),
      );
      await eventually(() => got.length >= 10, 'the 10 events published before the group existed');
      expect(got.map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    });

    it('hands the partitions of a consumer that stops to the one left, in order, without loss or waiting for claimIdleMs', async () => {
      const ns = `r${randomUUID().slice(0, 8)}`;
      // Entries read ahead by the stopping consumer are handed back as idle; without that, they would wait a minute.
      const [one, two] = [await open(ns, { claimIdleMs: 60_000 }), await open(ns, { claimIdleMs: 60_000 })];
      const seen: Array<{ by: string; event: OutboxEvent }> = [];
      const slowly =
        (by: string) =>
        async ({ event: e }: { event: OutboxEvent }) => {
          seen.push({ by, event: e });
          await new Promise((r) => setTimeout(r, 3));
          return ACK;
        };
      const first = await one.subscribe('workers', { handle: slowly('one') });
      subscriptions.push(await two.subscribe('workers', { handle: slowly('two') }));
      const events = Array.from({ length: 300 }, (_, i) => event(`key-${i % 12}`, i));
      await one.publish(events);
      await eventually(() => seen.some((s) => s.by === 'one'), 'the first consumer to start');
      await first.stop();
      const stoppedAt = seen.length;
      await eventually(() => new Set(seen.map((s) => s.event.id)).size >= 300, 'all 300 events');
      expect(seen.slice(stoppedAt).every((s) => s.by === 'two')).toBe(true);
      for (let k = 0; k < 12; k++) {
        const firstSeen = [...new Set(seen.filter((s) => s.event.key === `key-${k}`).map((s) => n(s.event)))];
        expect(firstSeen).toEqual(events.filter((e) => e.key === `key-${k}`).map(n));
      }
    });

    it('lets a follower read without writing anything to Redis', async () => {
      const ns = `r${randomUUID().slice(0, 8)}`;
      const broker = await open(ns);
      const heard: OutboxEvent[] = [];
      const follower = await broker.follow({ onEvents: (events) => heard.push(...events), onGap: () => {} });
      await broker.publish([event('a', 1), event('b', 2)]);
      await eventually(() => heard.length === 2, 'both events');
      await follower.stop();
      const client = createClient({ url });
      await client.connect();
      try {
        const keys: string[] = [];
        for await (const batch of client.scanIterator({ MATCH: `${ns}:*`, COUNT: 500 })) keys.push(...batch);
        expect(keys.every((k) => k.startsWith(`${ns}:events:`))).toBe(true);
        for (const key of keys) expect(await client.xInfoGroups(key)).toEqual([]);
      } finally {
        client.destroy();
      }
    });

    it('hands the events of one read to handleBatch together, and reads a batch whose handler threw again', async () => {
      const broker = await open(`r${randomUUID().slice(0, 8)}`);
      const events = Array.from({ length: 20 }, (_, i) => event('one-key', i));
      // Published before the group exists: its first read finds all 20 (groups start at 0).
      await broker.publish(events);
      const batches: number[][] = [];
      let thrown = false;
      subscriptions.push(
        await broker.subscribe('g', {
          handle: async (d) => {
            batches.push([n(d.event)]);
            return ACK;
          },
          handleBatch: async (ds) => {
            batches.push(ds.map((d) => n(d.event)));
            if (!thrown) {
              thrown = true;
              throw new Error('a bug in the batch handler');
            }
            return ds.map(() => ACK);
          },
        }),
      );
      await eventually(() => batches.length >= 2, 'the batch and its second reading');
      expect(batches[0]).toEqual(events.map(n));
      expect(batches[1]).toEqual(events.map(n));
    });

    it('handles again, before the next one, an event whose handler threw', async () => {
      const broker = await open(`r${randomUUID().slice(0, 8)}`);
      const events = Array.from({ length: 6 }, (_, i) => event('one-key', i));
      const got: number[] = [];
      let thrown = false;
      subscriptions.push(
        await broker.subscribe('g', {
          handle: async (d) => {
            got.push(n(d.event));
            if (n(d.event) === 2 && !thrown) {
              thrown = true;
              throw new Error('a bug in the handler');
            }
            return ACK;
          },
        }),
      );
      await broker.publish(events);
      await eventually(() => got.length >= 7, 'six events and one redelivery');
      expect(got).toEqual([0, 1, 2, 2, 3, 4, 5]);
    });
  });
});
