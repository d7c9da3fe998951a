import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createPostgresBroker } from '../../src/platform/messaging/postgres/postgres-broker.ts';
import { addToOutbox } from '../../src/platform/messaging/outbox.ts';
import { createRelay } from '../../src/platform/messaging/relay.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import type { Broker, OutboxEvent } from '../../src/platform/messaging/broker.ts';
import { eventually } from './contract.ts';

/** The PostgreSQL broker on the relay's own pool: the relay appends to the log inside its own transaction. */
let db: TestDatabase;
let transaction: ReturnType<typeof createTransaction>;
const opened: Broker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
});

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await db?.drop();
});

async function openBroker(namespace: string): Promise<Broker> {
  const broker = await createPostgresBroker({ sql: db.sql, namespace, leaseMs: 1500, pollMs: 100 });
  opened.push(broker);
  // The relay must not go through publish(): it appends in its own transaction.
  return {
    ...broker,
    publish: async () => {
      throw new Error('publish() called');
    },
  };
}

async function unsent(): Promise<number> {
  return (await db.sql`select count(*)::int as n from messaging.outbox where sent_at is null`)[0]!.n as number;
}

async function logged(namespace: string): Promise<string[]> {
  return (
    await db.sql<
      { id: string }[]
    >`select event->>'id' as id from messaging.log where namespace = ${namespace} order by seq`
  ).map((r) => r.id);
}

describe('the relay appending to a PostgreSQL log in its own database', () => {
  it('delivers each committed event as it was written, in commit order per key', async () => {
    const broker = await openBroker('append-shape');
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      ids.push(
        await transaction({}, (tx) =>
          addToOutbox(tx, {
            type: 't.appended',
            key: `k${i % 3}`,
            payload: { i, nested: { s: 'é' } },
            headers: { h: String(i) },
          }),
        ),
      );
    }
    const got: OutboxEvent[] = [];
    const sub = await broker.subscribe('shape', {
      handle: async (d) => {
        got.push(d.event);
        return { kind: 'ack' };
      },
    });
    try {
      const relay = createRelay({ sql: db.sql, broker, batchSize: 7 });
      while ((await relay.runOnce()) > 0);
      expect(await unsent()).toBe(0);
      await eventually(() => got.length === 30, 'all 30 events');
      const rows = await db.sql<
        { id: string; created_at: Date }[]
      >`select id, created_at from messaging.outbox where id = any(${ids}::uuid[])`;
      const createdAt = new Map(rows.map((r) => [r.id, r.created_at.toISOString()]));
      for (const event of got) {
        const i = ids.indexOf(event.id);
        expect(event).toEqual({
          id: ids[i],
          type: 't.appended',
          key: `k${i % 3}`,
          payload: { i, nested: { s: 'é' } },
          headers: { h: String(i) },
          createdAt: createdAt.get(event.id),
        });
      }
      // Appended by the transaction that marked them sent.
      const [apart] = await db.sql<{ n: number }[]>`select count(*)::int as n from messaging.log l
        join messaging.outbox o on o.id = (l.event->>'id')::uuid where l.namespace = 'append-shape' and l.xmin <> o.xmin`;
      expect(apart!.n).toBe(0);
      for (const key of ['k0', 'k1', 'k2']) {
        expect(got.filter((e) => e.key === key).map((e) => e.id)).toEqual(ids.filter((_, i) => `k${i % 3}` === key));
      }
    } finally {
      await sub.stop();
    }
  });

  it('leaves neither the mark nor the log rows when the relay dies before its commit, and appends once after', async () => {
    const broker = await openBroker('append-killed');
    const id = await transaction({}, (tx) => addToOutbox(tx, { type: 't.once', key: 'x', payload: {} }));
    const dying: Broker = {
      ...broker,
      outboxAppender: {
        sql: broker.outboxAppender!.sql,
        appendFromOutbox(conn, claimed) {
          const statement = broker.outboxAppender!.appendFromOutbox(conn, claimed).execute();
          // The relay's session ends after the append and before its COMMIT (a relay killed in between).
          conn`select pg_terminate_backend(pg_backend_pid())`.execute().catch(() => {});
          return statement;
        },
      },
    };
    await expect(createRelay({ sql: db.sql, broker: dying }).runOnce()).rejects.toThrow();
    expect(await unsent()).toBe(1);
    expect(await logged('append-killed')).toEqual([]);
    while ((await createRelay({ sql: db.sql, broker }).runOnce()) > 0);
    expect(await unsent()).toBe(0);
    expect(await logged('append-killed')).toEqual([id]);
  });

  it('lets two relays run at once without appending an event twice', async () => {
    const broker = await openBroker('append-two');
    const ids: string[] = [];
    for (let i = 0; i < 300; i++)
      ids.push(await transaction({}, (tx) => addToOutbox(tx, { type: 't.many', key: `k${i % 7}`, payload: { i } })));
    const a = createRelay({ sql: db.sql, broker, batchSize: 50 });
    const b = createRelay({ sql: db.sql, broker, batchSize: 50 });
    const drain = async (relay: typeof a) => {
      for (let i = 0; i < 40; i++) {
        await relay.runOnce();
        if ((await unsent()) === 0) return;
      }
    };
    await Promise.all([drain(a), drain(b)]);
    expect(await unsent()).toBe(0);
    const appended = await logged('append-two');
    expect(appended.length).toBe(new Set(appended).size);
    expect(appended).toEqual(ids); // commit order
  });

  it('publishes through publish() when the broker is on another pool', async () => {
    const other = await createPostgresBroker({
      sql: db.pool(2, `${db.applicationName}-other`),
      ownsPool: true,
      namespace: 'append-other',
    });
    opened.push(other);
    const published: string[] = [];
    const spy: Broker = {
      ...other,
      publish: async (events) => {
        published.push(...events.map((e) => e.id));
        await other.publish(events);
      },
    };
    const id = await transaction({}, (tx) => addToOutbox(tx, { type: 't.other', key: 'o', payload: {} }));
    while ((await createRelay({ sql: db.sql, broker: spy }).runOnce()) > 0);
    expect(published).toEqual([id]);
    expect(await logged('append-other')).toEqual([id]);
  });
});
