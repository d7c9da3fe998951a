import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing } from '../../src/platform/observability/tracing.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import type { Broker, Delivery, SubscribeOptions } from '../../src/platform/messaging/broker.ts';
import { undecodableEvent } from '../../src/platform/messaging/codec/event-codec.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { event } from './contract.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table public.batch_effects (event_id uuid not null)`;
});
afterAll(async () => {
  await db?.drop();
});

/** A broker that only captures what consume() subscribes with, so the test can hand it deliveries itself. */
function capturingBroker(): { broker: Broker; options: () => SubscribeOptions } {
  let captured: SubscribeOptions | undefined;
  const broker = {
    name: 'postgres',
    partitions: 1,
    deadLetters: undefined as never,
    publish: async () => {},
    close: async () => {},
    follow: async () => ({ stop: async () => {} }),
    subscribe: async (_group: string, options: SubscribeOptions) => {
      captured = options;
      return { stop: async () => {} };
    },
  } satisfies Broker;
  return { broker, options: () => captured! };
}

describe('the consumer runner with a batch', () => {
  it('applies the events around a poison one once each, and dead-letters the poison after maxAttempts attempts in all', async () => {
    const { broker, options } = capturingBroker();
    const transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
    const events = [event('k', 1), event('k', 2), event('k', 3)];
    const poison = events[1]!;
    const attempts: number[] = [];
    await consume({
      broker,
      transaction,
      group: 'batch',
      maxAttempts: 3,
      sleep: async () => {},
      handler: async (e, tx) => {
        if (e.id === poison.id) throw new Error('poison');
        await tx`insert into public.batch_effects (event_id) values (${e.id})`;
      },
      onError: (_e, attempt) => attempts.push(attempt),
    });
    const deliveries: Delivery[] = events.map((e) => ({ event: e, partition: 0 }));
    const outcomes = await options().handleBatch!(deliveries);
    expect(outcomes).toEqual([{ kind: 'ack' }, { kind: 'dead-letter', error: 'poison', attempts: 3 }, { kind: 'ack' }]);
    expect(attempts).toEqual([1, 2, 3]);
    const effects = await db.sql<{ event_id: string }[]>`select event_id from public.batch_effects`;
    expect(effects.map((r) => r.event_id).sort()).toEqual([events[0]!.id, events[2]!.id].sort());

    // Delivered again (the adapter could not settle): acknowledged, no second effect.
    expect(await options().handleBatch!([deliveries[0]!, deliveries[2]!])).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    expect((await db.sql`select count(*)::int as n from public.batch_effects`)[0]!.n).toBe(2);
  });
});

describe("the consumer runner and its caller's onError", () => {
  it('settles every delivery even when onError throws', async () => {
    const { broker, options } = capturingBroker();
    const transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
    const events = [event('o', 1), event('o', 2)];
    let failures = 0;
    await consume({
      broker,
      transaction,
      group: 'throwing-on-error',
      maxAttempts: 2,
      sleep: async () => {},
      handler: async (e) => {
        if (e.id === events[0]!.id && failures++ === 0) throw new Error('once');
      },
      onError: () => {
        throw new Error('onError itself fails');
      },
    });
    const outcomes = await options().handleBatch!(events.map((e) => ({ event: e, partition: 0 })));
    expect(outcomes).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
  });
});

describe("the handler transaction's commit", () => {
  beforeAll(async () => {
    // Test servers may run with synchronous_commit off; sessions of this database start with it on.
    await db.sql.unsafe(`alter database ${db.name} set synchronous_commit = on`);
  });

  async function settingsSeen(withLogOnThisServer: boolean): Promise<string[]> {
    const { broker: base, options } = capturingBroker();
    const broker: Broker = withLogOnThisServer
      ? {
          ...base,
          outboxAppender: {
            sql: db.sql,
            appendFromOutbox: () => {
              throw new Error('not used here');
            },
          },
        }
      : base;
    const transaction = createTransaction({
      sql: db.pool(2, `${db.applicationName}-commit`),
      defaultDeadlineMs: 5000,
      now: Date.now,
      random: Math.random,
    });
    const seen: string[] = [];
    await consume({
      broker,
      transaction,
      group: `commit-${withLogOnThisServer}`,
      handler: async (_e, tx) => {
        seen.push((await tx<{ s: string }[]>`select current_setting('synchronous_commit') as s`)[0]!.s);
      },
    });
    const one = [{ event: event('c', 1), partition: 0 }];
    const two = [
      { event: event('c', 2), partition: 0 },
      { event: event('c', 3), partition: 0 },
    ];
    expect(await options().handleBatch!(one)).toEqual([{ kind: 'ack' }]);
    expect(await options().handleBatch!(two)).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    return seen;
  }

  it("does not wait for the WAL flush when the broker's log is on the same server (its acknowledgement follows in the same WAL)", async () => {
    expect(await settingsSeen(true)).toEqual(['off', 'off', 'off']);
  });

  it('waits for the WAL flush when the broker acknowledges elsewhere', async () => {
    expect(await settingsSeen(false)).toEqual(['on', 'on', 'on']);
  });
});

describe('the consumer runner with several partitions at once', () => {
  const d = (key: string, n: number, partition: number): Delivery => ({ event: event(key, n), partition });

  it('applies what partitions hand over while every transaction is busy together, in one transaction', async () => {
    const { broker, options } = capturingBroker();
    const transaction = createTransaction({
      sql: db.pool(4, `${db.applicationName}-together`),
      defaultDeadlineMs: 5000,
      now: Date.now,
      random: Math.random,
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen = new Map<number, string>();
    await consume({
      broker,
      transaction,
      group: 'together',
      transactionsAtOnce: 1,
      handler: async (e, tx) => {
        const n = (e.payload as { n: number }).n;
        if (n === 1) await held;
        seen.set(n, (await tx<{ x: string }[]>`select txid_current()::text as x`)[0]!.x);
      },
    });
    const first = options().handleBatch!([d('a', 1, 0)]);
    await new Promise((resolve) => setTimeout(resolve, 50)); // partition 0's transaction is open and held
    const second = options().handleBatch!([d('b', 2, 1), d('b', 3, 1)]);
    const third = options().handle(d('c', 4, 2));
    release();
    expect(await first).toEqual([{ kind: 'ack' }]);
    expect(await second).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    expect(await third).toEqual({ kind: 'ack' });
    expect(new Set([seen.get(2), seen.get(3), seen.get(4)]).size).toBe(1);
    expect(seen.get(1)).not.toBe(seen.get(2));
  });

  it('lets a partition whose batch shared a transaction with a failing event go on, while that one retries on its own', async () => {
    const { broker, options } = capturingBroker();
    const transaction = createTransaction({
      sql: db.pool(4, `${db.applicationName}-apart`),
      defaultDeadlineMs: 5000,
      now: Date.now,
      random: Math.random,
    });
    await db.sql`create table if not exists public.apart_effects (event_id uuid not null)`;
    let openBackoff!: () => void;
    const backoff = new Promise<void>((resolve) => {
      openBackoff = resolve;
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const poison = d('p', 2, 1);
    await consume({
      broker,
      transaction,
      group: 'apart',
      transactionsAtOnce: 1,
      maxAttempts: 2,
      sleep: () => backoff,
      handler: async (e, tx) => {
        if ((e.payload as { n: number }).n === 1) await held;
        if (e.id === poison.event.id) throw new Error('poison');
        await tx`insert into public.apart_effects (event_id) values (${e.id})`;
      },
    });
    const first = options().handleBatch!([d('a', 1, 0)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const failing = options().handleBatch!([poison, d('p', 3, 1)]);
    const healthy = options().handleBatch!([d('h', 4, 2), d('h', 5, 2)]);
    release();
    await first;
    // The poison's retry waits on its backoff, which stays shut: the healthy partition is answered meanwhile.
    expect(await healthy).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    let failingSettled = false;
    void failing.then(() => {
      failingSettled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(failingSettled).toBe(false);
    openBackoff();
    expect(await failing).toEqual([{ kind: 'dead-letter', error: 'poison', attempts: 2 }, { kind: 'ack' }]);
    const effects = (await db.sql<{ event_id: string }[]>`select event_id from public.apart_effects`).map(
      (r) => r.event_id,
    );
    expect(effects).toHaveLength(4); // events 1, 3, 4 and 5, each once
    expect(new Set(effects).size).toBe(4);
    expect(effects).not.toContain(poison.event.id);
  });
});

describe('the consumer runner and traces', () => {
  it("continues the trace an event carries: the handler's transaction and statements are in it", async () => {
    const { store } = startTracing({ serviceName: 'stratum-test' });
    const { broker, options } = capturingBroker();
    const transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
    await consume({
      broker,
      transaction,
      group: 'traced',
      handler: async (e, tx) => {
        await tx`insert into public.batch_effects (event_id) values (${e.id})`;
      },
    });
    const traceId = randomBytes(16).toString('hex');
    const traced = { ...event('t', 1), headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } };
    const untraced = event('t', 2);
    expect(await options().handle({ event: traced, partition: 0 })).toEqual({ kind: 'ack' });
    expect(await options().handle({ event: untraced, partition: 0 })).toEqual({ kind: 'ack' });

    const spans = store!.spans(traceId);
    const consumer = spans.find((s) => s.name === 'consume traced')!;
    expect(consumer).toMatchObject({ kind: 'consumer', attributes: { 'messaging.message.id': traced.id } });
    expect(consumer.parentSpanId).toBe(traced.headers.traceparent.split('-')[2]);
    const tx = spans.find((s) => s.name === 'transaction consume.traced')!;
    expect(tx.parentSpanId).toBe(consumer.spanId);
    const statements = spans.filter((s) => s.parentSpanId === tx.spanId).map((s) => s.name);
    expect(statements).toEqual(['INSERT messaging.processed_messages', 'INSERT public.batch_effects']);
    // An event without a trace starts none.
    expect(store!.recent().filter((t) => t.traceId !== traceId)).toEqual([]);
  });
});

describe('the consumer runner and payloads off their schema', () => {
  it('dead-letters what reject refuses at once, without an attempt, and handles the events around it in order', async () => {
    const { broker, options } = capturingBroker();
    const transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
    const events = [event('k', 1), event('k', 2), event('k', 3), event('k', 4)];
    const handled: number[] = [];
    await consume({
      broker,
      transaction,
      group: 'screened',
      sleep: async () => {},
      reject: (e) => ((e.payload as { n: number }).n % 2 === 0 ? `event test.happened: payload /n is even` : undefined),
      handler: async (e) => {
        handled.push((e.payload as { n: number }).n);
      },
    });
    const outcomes = await options().handleBatch!(events.map((e) => ({ event: e, partition: 0 })));
    expect(outcomes).toEqual([
      { kind: 'ack' },
      { kind: 'dead-letter', error: 'event test.happened: payload /n is even', attempts: 0 },
      { kind: 'ack' },
      { kind: 'dead-letter', error: 'event test.happened: payload /n is even', attempts: 0 },
    ]);
    expect(handled).toEqual([1, 3]);
    expect(await options().handle({ event: event('k', 6), partition: 0 })).toMatchObject({ kind: 'dead-letter' });
    expect(handled).toEqual([1, 3]);
    // A replayed dead letter of an unreadable message (its id need not be a UUID) is acknowledged unseen.
    const kept = undecodableEvent('raw-7', Buffer.from('<x/>'), 'text/xml');
    expect(await options().handle({ event: kept, partition: 0 })).toEqual({ kind: 'ack' });
    expect(handled).toEqual([1, 3]);
  });
});
