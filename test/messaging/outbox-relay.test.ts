import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createPostgresBroker } from '../../src/platform/messaging/postgres/postgres-broker.ts';
import { addAllToOutbox, addToOutbox, OUTBOX_CHANNEL } from '../../src/platform/messaging/outbox.ts';
import { createWakeGate } from '../../src/platform/messaging/relay-wake.ts';
import { createRelay } from '../../src/platform/messaging/relay.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import type { Broker, OutboxEvent } from '../../src/platform/messaging/broker.ts';
import { eventually, eventuallyAsync } from './contract.ts';

let db: TestDatabase;
let broker: Broker;
let transaction: ReturnType<typeof createTransaction>;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table public.effects (event_id uuid not null, n int not null)`;
  broker = await createPostgresBroker({
    sql: db.pool(4, `${db.applicationName}-broker`),
    ownsPool: true,
    namespace: 'relaytest',
    leaseMs: 1500,
    pollMs: 100,
  });
  transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
});

afterAll(async () => {
  await broker?.close();
  await db?.drop();
});

async function unsent() {
  return (await db.sql`select count(*)::int as n from messaging.outbox where sent_at is null`)[0]!.n as number;
}

describe('the outbox and its relay', () => {
  it('publishes what committed, nothing of what rolled back', async () => {
    await transaction({}, (tx) => addToOutbox(tx, { type: 't.kept', key: 'k', payload: { a: 1 } }));
    await transaction({}, async (tx) => {
      await addToOutbox(tx, { type: 't.dropped', key: 'k', payload: {} });
      throw new Error('roll back');
    }).catch(() => {});
    const published: OutboxEvent[] = [];
    const spy: Broker = {
      ...broker,
      publish: async (events) => {
        published.push(...events);
        await broker.publish(events);
      },
    };
    const relay = createRelay({ sql: db.sql, broker: spy });
    while ((await relay.runOnce()) > 0);
    expect(published.map((e) => e.type)).toEqual(['t.kept']);
    expect(published[0]).toMatchObject({ key: 'k', payload: { a: 1 }, headers: {} });
    expect(await unsent()).toBe(0);
  });

  it('writes several events of one transaction in one statement, published in the order given, and none of a rollback', async () => {
    const events = Array.from({ length: 5 }, (_, i) => ({
      type: 't.all',
      key: i % 2 === 0 ? 'even' : 'odd',
      payload: { i },
      headers: { h: String(i) },
    }));
    const ids = await transaction({}, (tx) => addAllToOutbox(tx, events));
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
    await transaction({}, async (tx) => {
      await addAllToOutbox(tx, [
        { type: 't.all.dropped', key: 'k', payload: {} },
        { type: 't.all.dropped', key: 'k', payload: {} },
      ]);
      throw new Error('roll back');
    }).catch(() => {});
    expect(await transaction({}, (tx) => addAllToOutbox(tx, []))).toEqual([]);
    await expect(
      transaction({}, (tx) => addAllToOutbox(tx, [{ type: 't.all.bad', key: 'k', payload: undefined }])),
    ).rejects.toThrow(/not JSON/);
    const published: OutboxEvent[] = [];
    const spy: Broker = {
      ...broker,
      publish: async (batch) => {
        published.push(...batch);
        await broker.publish(batch);
      },
    };
    const relay = createRelay({ sql: db.sql, broker: spy });
    while ((await relay.runOnce()) > 0);
    expect(published.map((e) => e.id)).toEqual(ids);
    expect(published.map((e) => [e.type, e.key, e.payload, e.headers])).toEqual(
      events.map((e) => [e.type, e.key, e.payload, e.headers]),
    );
    expect(await unsent()).toBe(0);
  });

  it('publishes again what a relay published but could not mark (killed in between): nothing is lost', async () => {
    const id = await transaction({}, (tx) => addToOutbox(tx, { type: 't.once', key: 'x', payload: {} }));
    const published: string[] = [];
    const dying: Broker = {
      ...broker,
      publish: async (events) => {
        published.push(...events.map((e) => e.id));
        await broker.publish(events);
        throw new Error('killed after publishing');
      },
    };
    await expect(createRelay({ sql: db.sql, broker: dying }).runOnce()).rejects.toThrow(/killed/);
    expect(await unsent()).toBe(1);
    const healthy: Broker = {
      ...broker,
      publish: async (events) => {
        published.push(...events.map((e) => e.id));
        await broker.publish(events);
      },
    };
    await createRelay({ sql: db.sql, broker: healthy }).runOnce();
    expect(published).toEqual([id, id]);
    expect(await unsent()).toBe(0);
  });

  it('lets two relays run at once without sending an event twice', async () => {
    for (let i = 0; i < 300; i++)
      await transaction({}, (tx) => addToOutbox(tx, { type: 't.many', key: `k${i % 7}`, payload: { i } }));
    const sent: string[] = [];
    const counting: Broker = {
      ...broker,
      publish: async (events) => {
        sent.push(...events.map((e) => e.id));
        await broker.publish(events);
      },
    };
    const a = createRelay({ sql: db.sql, broker: counting, batchSize: 50 });
    const b = createRelay({ sql: db.sql, broker: counting, batchSize: 50 });
    const drain = async (relay: typeof a) => {
      for (let i = 0; i < 40; i++) {
        await relay.runOnce();
        if ((await unsent()) === 0) return;
      }
    };
    await Promise.all([drain(a), drain(b)]);
    expect(await unsent()).toBe(0);
    expect(sent.length).toBe(new Set(sent).size);
    expect(sent.length).toBe(300);
  });

  it('lets writers skip their NOTIFY while a relay is awake, and tells that relay when they have all committed', async () => {
    const heard: string[] = [];
    const listener = await db.sql.listen(OUTBOX_CHANNEL, (payload) => {
      heard.push(payload);
    });
    // NOTIFYs arrive in commit order: once the marker is heard, a writer's NOTIFY before it would have been too.
    const heardBeforeMarker = async () => {
      const marker = `marker-${heard.length}`;
      await db.sql`select pg_notify(${OUTBOX_CHANNEL}, ${marker})`;
      await eventually(() => heard.includes(marker), 'the marker');
      const before = heard.slice(0, heard.indexOf(marker));
      heard.length = 0;
      return before;
    };
    const gate = createWakeGate(db.sql);
    try {
      await transaction({}, (tx) => addToOutbox(tx, { type: 't.wake', key: 'w', payload: {} }));
      expect(await heardBeforeMarker()).toEqual(['']); // no relay awake: the writer wakes one

      expect(await gate.stayAwake()).toBe(true);
      let commit!: () => void;
      const committing = new Promise<void>((resolve) => {
        commit = resolve;
      });
      let written!: () => void;
      const wrote = new Promise<void>((resolve) => {
        written = resolve;
      });
      const writer = transaction({}, async (tx) => {
        await addToOutbox(tx, { type: 't.quiet', key: 'w', payload: {} });
        written();
        await committing;
      });
      await wrote;
      expect(await gate.writersSettled()).toBe(false); // a writer that left the waking to the relay is still open
      commit();
      await writer;
      expect(await gate.writersSettled()).toBe(true);
      expect(await heardBeforeMarker()).toEqual([]); // it did not NOTIFY

      await gate.sleep();
      await transaction({}, (tx) => addToOutbox(tx, { type: 't.wake', key: 'w', payload: {} }));
      expect(await heardBeforeMarker()).toEqual(['']);
    } finally {
      await gate.close();
      await listener.unlisten();
      while ((await createRelay({ sql: db.sql, broker }).runOnce()) > 0);
    }
  });

  it('publishes, without waiting for its poll, the event of a writer that committed after the relay ran out of work', async () => {
    let commitLate!: () => void;
    const late = new Promise<void>((resolve) => {
      commitLate = resolve;
    });
    let lateWriter: Promise<string> | undefined;
    let wrote!: () => void;
    const lateWrote = new Promise<void>((resolve) => {
      wrote = resolve;
    });
    const published: string[] = [];
    const relayBusy: Broker = {
      ...broker,
      publish: async (events) => {
        // The second batch: the relay is awake now, so this writer leaves the waking to it, and stays open.
        if (published.length === 1 && !lateWriter) {
          lateWriter = transaction({}, async (tx) => {
            const id = await addToOutbox(tx, { type: 't.late', key: 'l', payload: {} });
            wrote();
            await late;
            return id;
          });
          await lateWrote;
        }
        published.push(...events.map((e) => e.id));
      },
    };
    // Neither the poll nor lingering looks: only the relay's look after the writers settled can find the late event.
    const relay = createRelay({ sql: db.sql, broker: relayBusy, batchSize: 1, pollMs: 60_000, lingerMs: 60_000 });
    const first = await transaction({}, async (tx) => [
      await addToOutbox(tx, { type: 't.early', key: 'l', payload: { n: 1 } }),
      await addToOutbox(tx, { type: 't.early', key: 'l', payload: { n: 2 } }),
    ]);
    await relay.start();
    try {
      await eventually(() => published.length === 2, 'the two early events');
      commitLate();
      const lateId = await lateWriter!;
      await eventually(() => published.includes(lateId), 'the late event, long before the 60 s poll');
      expect(published).toEqual([...first, lateId]);
    } finally {
      commitLate();
      await relay.stop();
    }
  });

  it('deletes sent rows past the retention, oldest first, and keeps unsent ones', async () => {
    for (let i = 0; i < 30; i++)
      await transaction({}, (tx) => addToOutbox(tx, { type: 't.old', key: `o${i % 3}`, payload: { i } }));
    while ((await createRelay({ sql: db.sql, broker }).runOnce()) > 0);
    const [unsent] = await db.sql<{ seq: string }[]>`
      insert into messaging.outbox (id, type, key, payload) values (gen_random_uuid(), 't.unsent', 'u', '{}') returning seq`;
    // Held by another transaction, the unsent row is skipped by the relay's claim, so it stays unsent.
    const holder = await db.sql.reserve();
    await holder`begin`;
    await holder`select 1 from messaging.outbox where seq = ${unsent!.seq} for update`;
    const relay = createRelay({ sql: db.sql, broker, retentionMs: 0, pollMs: 60_000 });
    await relay.start();
    try {
      const left = await eventuallyAsync(
        () => db.sql<{ seq: string }[]>`select seq from messaging.outbox`,
        (rows) => rows.length === 1,
        'only the unsent row to be left',
      );
      expect(left[0]!.seq).toBe(unsent!.seq);
    } finally {
      await relay.stop();
      await holder`rollback`;
      holder.release();
      while ((await createRelay({ sql: db.sql, broker }).runOnce()) > 0);
    }
  });

  it('wakes on NOTIFY after a commit, and the consumer applies each effect once even when an event comes twice', async () => {
    const relay = createRelay({ sql: db.sql, broker, pollMs: 60_000 });
    await relay.start();
    const subscription = await consume({
      broker,
      transaction,
      group: 'effects',
      handler: async (event, tx) => {
        await tx`insert into public.effects (event_id, n) values (${event.id}, 1)`;
      },
    });
    try {
      const id = await transaction({}, (tx) => addToOutbox(tx, { type: 't.effect', key: 'e', payload: {} }));
      await eventuallyAsync(
        () => db.sql`select count(*)::int as n from public.effects where event_id = ${id}`,
        (r) => r[0]!.n === 1,
        'the effect',
      );
      // The same event delivered again (a relay that re-sent it): no second effect.
      const [row] =
        await db.sql`select id, type, key, payload, headers, created_at from messaging.outbox where id = ${id}`;
      await broker.publish([
        {
          id: row!.id,
          type: row!.type,
          key: row!.key,
          payload: row!.payload,
          headers: row!.headers,
          createdAt: row!.created_at.toISOString(),
        },
      ]);
      const marker = await transaction({}, (tx) => addToOutbox(tx, { type: 't.effect', key: 'e', payload: {} }));
      await eventuallyAsync(
        () => db.sql`select count(*)::int as n from public.effects where event_id = ${marker}`,
        (r) => r[0]!.n === 1,
        'the next effect',
      );
      expect((await db.sql`select count(*)::int as n from public.effects where event_id = ${id}`)[0]!.n).toBe(1);
    } finally {
      await subscription.stop();
      await relay.stop();
    }
  });

  it('retries a failing handler with backoff, dead-letters it after maxAttempts with the last error, and replays it', async () => {
    let attempts = 0;
    let healed = false;
    const subscription = await consume({
      broker,
      transaction,
      group: 'fragile',
      maxAttempts: 3,
      baseBackoffMs: 1,
      handler: async (event, tx) => {
        if (event.type !== 't.poison') return;
        attempts++;
        if (!healed) throw new Error(`attempt ${attempts} failed`);
        await tx`insert into public.effects (event_id, n) values (${event.id}, 2)`;
      },
    });
    try {
      const id = await transaction({}, (tx) => addToOutbox(tx, { type: 't.poison', key: 'p', payload: {} }));
      await createRelay({ sql: db.sql, broker }).runOnce();
      const letters = await eventuallyAsync(
        () => broker.deadLetters.list('fragile', 10),
        (l) => l.length === 1,
        'the dead letter',
      );
      expect(attempts).toBe(3);
      expect(letters[0]).toMatchObject({ error: 'attempt 3 failed', attempts: 3, event: { id } });
      healed = true;
      await broker.deadLetters.replay('fragile', letters[0]!.id);
      await eventuallyAsync(
        () => db.sql`select count(*)::int as n from public.effects where event_id = ${id} and n = 2`,
        (r) => r[0]!.n === 1,
        'the replayed effect',
      );
      await eventually(() => attempts === 4, 'exactly one more attempt');
    } finally {
      await subscription.stop();
    }
  });
});

describe('the PostgreSQL log', () => {
  it('is trimmed up to the position every group has passed', async () => {
    const log = await createPostgresBroker({
      sql: db.pool(2, `${db.applicationName}-trim`),
      ownsPool: true,
      namespace: 'trimtest',
      pollMs: 100,
    });
    try {
      const seen: string[] = [];
      const sub = await log.subscribe('only', {
        handle: async (d) => {
          seen.push(d.event.id);
          return { kind: 'ack' };
        },
      });
      const events = Array.from({ length: 10 }, (_, i) => ({
        id: crypto.randomUUID(),
        type: 't',
        key: `k${i}`,
        payload: {},
        headers: {},
        createdAt: new Date().toISOString(),
      }));
      await log.publish(events);
      await eventually(() => seen.length === 10, 'all 10 events');
      await sub.stop();
      expect(await log.trim()).toBe(10);
      expect((await db.sql`select count(*)::int as n from messaging.log where namespace = 'trimtest'`)[0]!.n).toBe(0);
      // A second group that has not read them keeps them.
      await log.subscribe('late', { handle: async () => new Promise(() => {}) });
      await log.publish(events.slice(0, 3).map((e) => ({ ...e, id: crypto.randomUUID() })));
      expect(await log.trim()).toBe(0);
    } finally {
      await log.close();
    }
  });
});
