import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import type { Broker, Delivery, SubscribeOptions } from '../../src/platform/messaging/broker.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { event } from './contract.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table public.batch_effects (event_id uuid not null)`;
});
afterAll(async () => { await db?.drop(); });

/** A broker that only captures what consume() subscribes with, so the test can hand it deliveries itself. */
function capturingBroker(): { broker: Broker; options: () => SubscribeOptions } {
  let captured: SubscribeOptions | undefined;
  const broker = {
    name: 'postgres', partitions: 1, deadLetters: undefined as never,
    publish: async () => {}, close: async () => {}, follow: async () => ({ stop: async () => {} }),
    subscribe: async (_group: string, options: SubscribeOptions) => { captured = options; return { stop: async () => {} }; },
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
      broker, transaction, group: 'batch', maxAttempts: 3, sleep: async () => {},
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

describe('the handler transaction\'s commit', () => {
  beforeAll(async () => {
    // Test servers may run with synchronous_commit off; sessions of this database start with it on.
    await db.sql.unsafe(`alter database ${db.name} set synchronous_commit = on`);
  });

  async function settingsSeen(withLogOnThisServer: boolean): Promise<string[]> {
    const { broker: base, options } = capturingBroker();
    const broker: Broker = withLogOnThisServer
      ? { ...base, outboxAppender: { sql: db.sql, appendFromOutbox: () => { throw new Error('not used here'); } } }
      : base;
    const transaction = createTransaction({ sql: db.pool(2, `${db.applicationName}-commit`), defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
    const seen: string[] = [];
    await consume({
      broker, transaction, group: `commit-${withLogOnThisServer}`,
      handler: async (_e, tx) => { seen.push((await tx<{ s: string }[]>`select current_setting('synchronous_commit') as s`)[0]!.s); },
    });
    const one = [{ event: event('c', 1), partition: 0 }];
    const two = [{ event: event('c', 2), partition: 0 }, { event: event('c', 3), partition: 0 }];
    expect(await options().handleBatch!(one)).toEqual([{ kind: 'ack' }]);
    expect(await options().handleBatch!(two)).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    return seen;
  }

  it('does not wait for the WAL flush when the broker\'s log is on the same server (its acknowledgement follows in the same WAL)', async () => {
    expect(await settingsSeen(true)).toEqual(['off', 'off', 'off']);
  });

  it('waits for the WAL flush when the broker acknowledges elsewhere', async () => {
    expect(await settingsSeen(false)).toEqual(['on', 'on', 'on']);
  });
});
