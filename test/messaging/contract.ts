import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, Delivery, OutboxEvent, Outcome, Subscription } from '../../src/platform/messaging/broker.ts';

/**
 * The broker contract every adapter must pass (see src/platform/messaging/broker.ts), run against the real
 * broker. `make(namespace)` returns a new adapter instance (its own connections) on a namespace of its own, so
 * two instances with the same namespace are two app instances sharing the broker.
 */
export interface ContractTarget {
  name: string;
  make(namespace: string): Promise<Broker>;
}

export function event(key: string, n: number): OutboxEvent {
  return {
    id: randomUUID(),
    type: 'test.happened',
    key,
    payload: { n },
    headers: { 'x-test': 'yes' },
    createdAt: new Date().toISOString(),
  };
}

/** Resolves when `check()` holds; fails the test after `timeoutMs` with `what` (a bound, not a timing claim). */
export async function eventually(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Like eventually(), for a check that must ask the broker. */
export async function eventuallyAsync<T>(
  read: () => Promise<T>,
  holds: (value: T) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (holds(value)) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ACK: Outcome = { kind: 'ack' };

export function describeBrokerContract(target: ContractTarget): void {
  describe(`${target.name}: the broker contract`, () => {
    const opened: Broker[] = [];
    const subscriptions: Subscription[] = [];
    const make = async (namespace: string) => {
      const broker = await target.make(namespace);
      opened.push(broker);
      return broker;
    };
    const subscribe = async (broker: Broker, group: string, handle: (d: Delivery) => Promise<Outcome>) => {
      const s = await broker.subscribe(group, { handle });
      subscriptions.push(s);
      return s;
    };

    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.stop().catch(() => {})));
      await Promise.all(opened.splice(0).map((b) => b.close().catch(() => {})));
    });

    it('delivers every event to every group, in publish order per key', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      const got: Record<string, OutboxEvent[]> = { billing: [], search: [] };
      for (const group of Object.keys(got))
        await subscribe(broker, group, async (d) => {
          got[group]!.push(d.event);
          return ACK;
        });
      const events = Array.from({ length: 60 }, (_, i) => event(`k${i % 6}`, i));
      await broker.publish(events.slice(0, 30));
      await broker.publish(events.slice(30));
      await eventually(() => got.billing!.length >= 60 && got.search!.length >= 60, 'both groups to get 60 events');
      for (const list of Object.values(got)) {
        expect(new Set(list.map((e) => e.id))).toEqual(new Set(events.map((e) => e.id)));
        for (let k = 0; k < 6; k++) {
          expect(list.filter((e) => e.key === `k${k}`).map((e) => (e.payload as { n: number }).n)).toEqual(
            events.filter((e) => e.key === `k${k}`).map((e) => (e.payload as { n: number }).n),
          );
        }
      }
      expect(got.billing![0]).toMatchObject({ type: 'test.happened', headers: { 'x-test': 'yes' } });
    });

    it('shares a group among competing consumers, keeping per-key order', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const [one, two] = [await make(ns), await make(ns)];
      const seen: Array<{ by: string; event: OutboxEvent }> = [];
      const slowly = (by: string) => async (d: Delivery) => {
        seen.push({ by, event: d.event });
        await new Promise((r) => setTimeout(r, 2));
        return ACK;
      };
      await subscribe(one, 'workers', slowly('one'));
      await subscribe(two, 'workers', slowly('two'));
      const events = Array.from({ length: 200 }, (_, i) => event(`key-${i % 20}`, i));
      // In ten publishes, as a relay sends them: an adapter may carry one publish's events of a partition together.
      for (let i = 0; i < events.length; i += 20) await one.publish(events.slice(i, i + 20));
      await eventually(() => new Set(seen.map((s) => s.event.id)).size >= 200, 'all 200 events');
      expect(new Set(seen.map((s) => s.by))).toEqual(new Set(['one', 'two']));
      for (let k = 0; k < 20; k++) {
        const order = seen.filter((s) => s.event.key === `key-${k}`).map((s) => (s.event.payload as { n: number }).n);
        expect(order).toEqual([...order].sort((a, b) => a - b));
      }
    });

    it('delivers again an event whose consumer went away before finishing it', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const first = await make(ns);
      let started = false;
      await subscribe(first, 'g', async () => {
        started = true;
        return new Promise<Outcome>(() => {});
      });
      const e = event('crash-key', 1);
      await first.publish([e]);
      await eventually(() => started, 'the first consumer to start');
      await first.close(); // the process "dies": its unfinished delivery goes back to the broker
      const second = await make(ns);
      const redelivered: OutboxEvent[] = [];
      await subscribe(second, 'g', async (d) => {
        redelivered.push(d.event);
        return ACK;
      });
      await eventually(() => redelivered.length > 0, 'the event to be delivered again', 60_000);
      expect(redelivered[0]!.id).toBe(e.id);
    }, 90_000);

    it('keeps a dead-lettered event for its group, replays it to that group only, and drops it', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      const poison = event('p', 1);
      const poisoned = new Set([poison.id]);
      const otherGroup: OutboxEvent[] = [];
      const deliveries: OutboxEvent[] = [];
      await subscribe(broker, 'other', async (d) => {
        otherGroup.push(d.event);
        return ACK;
      });
      await subscribe(broker, 'picky', async (d) => {
        deliveries.push(d.event);
        return poisoned.has(d.event.id) ? { kind: 'dead-letter', error: 'cannot handle this', attempts: 3 } : ACK;
      });
      await broker.publish([poison, event('p', 2)]);
      await eventually(() => deliveries.length >= 2 && otherGroup.length >= 2, 'both events in both groups');
      const letters = await eventuallyAsync(
        () => broker.deadLetters.list('picky', 10),
        (l) => l.length === 1,
        'one dead letter',
      );
      expect(letters[0]).toMatchObject({
        group: 'picky',
        error: 'cannot handle this',
        attempts: 3,
        event: { id: poison.id },
      });
      expect(await broker.deadLetters.list('other', 10)).toEqual([]);
      expect(await broker.deadLetters.get('picky', letters[0]!.id)).toMatchObject({ event: { id: poison.id } });

      poisoned.delete(poison.id);
      expect(await broker.deadLetters.replay('picky', letters[0]!.id)).toBe(true);
      await eventually(() => deliveries.filter((d) => d.id === poison.id).length === 2, 'the replayed event');
      expect(otherGroup.filter((d) => d.id === poison.id)).toHaveLength(1);
      await eventuallyAsync(
        () => broker.deadLetters.list('picky', 10),
        (l) => l.length === 0,
        'the replayed letter to leave',
      );

      const second = event('q', 1);
      poisoned.add(second.id);
      await broker.publish([second]);
      await eventually(() => deliveries.some((d) => d.id === second.id), 'a second poison event');
      const again = await eventuallyAsync(
        () => broker.deadLetters.list('picky', 10),
        (l) => l.length === 1,
        'the second dead letter',
      );
      expect(await broker.deadLetters.drop('picky', again[0]!.id)).toBe(true);
      expect(await broker.deadLetters.list('picky', 10)).toEqual([]);
      expect(await broker.deadLetters.drop('picky', again[0]!.id)).toBe(false);
    });

    it('hands consecutive events to handleBatch in order, settling each by its own outcome', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      const events = Array.from({ length: 80 }, (_, i) => event(`b${i % 4}`, i));
      const poison = events[41]!;
      const got: OutboxEvent[] = [];
      const outcomeOf = (d: Delivery): Outcome =>
        d.event.id === poison.id ? { kind: 'dead-letter', error: 'poison in a batch', attempts: 2 } : ACK;
      const s = await broker.subscribe('batched', {
        handle: async (d) => {
          got.push(d.event);
          return outcomeOf(d);
        },
        handleBatch: async (ds) => {
          expect(new Set(ds.map((d) => d.partition)).size).toBe(1);
          got.push(...ds.map((d) => d.event));
          return ds.map(outcomeOf);
        },
      });
      subscriptions.push(s);
      await broker.publish(events);
      await eventually(() => new Set(got.map((e) => e.id)).size >= 80, 'all 80 events');
      for (let k = 0; k < 4; k++) {
        expect(got.filter((e) => e.key === `b${k}`).map((e) => (e.payload as { n: number }).n)).toEqual(
          events.filter((e) => e.key === `b${k}`).map((e) => (e.payload as { n: number }).n),
        );
      }
      const letters = await eventuallyAsync(
        () => broker.deadLetters.list('batched', 10),
        (l) => l.length === 1,
        'the dead letter of the batch',
      );
      expect(letters[0]).toMatchObject({ error: 'poison in a batch', attempts: 2, event: { id: poison.id } });
      // Settled, not pending: a new consumer of the group gets nothing again.
      await s.stop();
      const again: OutboxEvent[] = [];
      const later = await make(ns);
      await subscribe(later, 'batched', async (d) => {
        again.push(d.event);
        return ACK;
      });
      const marker = event('b0', 999);
      await later.publish([marker]);
      await eventually(() => again.some((e) => e.id === marker.id), 'the marker event');
      expect(again.map((e) => e.id)).toEqual([marker.id]);
    });

    it('lets every follower hear every event published after it started, in order per key, and no replay of a dead letter', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const [one, two] = [await make(ns), await make(ns)];
      const before = event('f0', -1);
      await one.publish([before]);
      const heard: Record<'a' | 'b', OutboxEvent[]> = { a: [], b: [] };
      const gaps = { a: 0, b: 0 };
      for (const [name, broker] of [
        ['a', one],
        ['b', two],
      ] as const) {
        subscriptions.push(
          await broker.follow({
            onEvents: (events) => heard[name].push(...events),
            onGap: () => {
              gaps[name]++;
            },
          }),
        );
      }
      const deliveries: OutboxEvent[] = [];
      const poison = event('f1', 100);
      await subscribe(one, 'picky', async (d) => {
        deliveries.push(d.event);
        return d.event.id === poison.id && deliveries.filter((e) => e.id === poison.id).length === 1
          ? { kind: 'dead-letter', error: 'not yet', attempts: 1 }
          : ACK;
      });
      const events = Array.from({ length: 30 }, (_, i) => event(`f${i % 3}`, i));
      await two.publish(events.slice(0, 15));
      await one.publish([...events.slice(15), poison]);
      const all = [...events, poison];
      await eventually(
        () => heard.a.length >= all.length && heard.b.length >= all.length,
        'both followers to hear all 31 events',
      );

      const letters = await eventuallyAsync(
        () => one.deadLetters.list('picky', 10),
        (l) => l.length === 1,
        'the dead letter',
      );
      expect(await one.deadLetters.replay('picky', letters[0]!.id)).toBe(true);
      await eventually(
        () => deliveries.filter((e) => e.id === poison.id).length === 2,
        'the replay to reach its group',
      );
      // A marker behind the replay on the same key: once a follower heard it, it would have heard the replay too.
      const marker = event('f1', 200);
      await one.publish([marker]);
      await eventually(
        () => heard.a.some((e) => e.id === marker.id) && heard.b.some((e) => e.id === marker.id),
        'the marker',
      );

      for (const list of Object.values(heard)) {
        expect(list.map((e) => e.id).sort()).toEqual([...all, marker].map((e) => e.id).sort());
        for (let k = 0; k < 3; k++) {
          expect(list.filter((e) => e.key === `f${k}`).map((e) => (e.payload as { n: number }).n)).toEqual(
            [...all, marker].filter((e) => e.key === `f${k}`).map((e) => (e.payload as { n: number }).n),
          );
        }
      }
      expect(heard.a[0]).toMatchObject({ type: 'test.happened', headers: { 'x-test': 'yes' } });
      expect(gaps).toEqual({ a: 0, b: 0 });
    });

    it('lets the event in hand finish when a subscription stops', async () => {
      const ns = `c${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      let finished = false;
      let started = false;
      const s = await broker.subscribe('g', {
        handle: async () => {
          started = true;
          await new Promise((r) => setTimeout(r, 300));
          finished = true;
          return ACK;
        },
      });
      await broker.publish([event('x', 1)]);
      await eventually(() => started, 'the handler to start');
      await s.stop();
      expect(finished).toBe(true);
    });
  });
}
