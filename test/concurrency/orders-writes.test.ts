import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { ALLOWED_TRANSITIONS, ORDER_STATUSES, type OrderStatus } from '../../src/contexts/orders/order.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import {
  burst,
  closeAndDrop,
  customersByShard,
  expectFreshOrderServed,
  expectOnlyAllowed,
  shardOfCustomer,
  storedCopies,
  strayItems,
} from './support.ts';

// Order creations and status changes, 64 and 65 at once, on 4 shards with pools of 2: a few hot customers
// (one per shard, so every creation of a customer updates the same status counter row) and a few hot orders.
let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];
let hotCustomers: number[];

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 4 });
  stratum = await startTestApp(db, { poolMax: 4, shardPoolMax: 2, ordersShardCount: 4 });
  shards = await db.shards();
  hotCustomers = (await customersByShard(db.sql, 4, 1, 10)).flat();
});

afterAll(async () => {
  await closeAndDrop(stratum, db);
});

const itemsFor = (i: number) =>
  Array.from({ length: (i % 3) + 1 }, (_, k) => ({ productId: 100 + k, quantity: k + 1, price: `${i}.${k}5` }));

async function countsByStatus(): Promise<Record<OrderStatus, number>> {
  const byStatus = Object.fromEntries(ORDER_STATUSES.map((s) => [s, 0])) as Record<OrderStatus, number>;
  for (const sql of shards) {
    for (const r of await sql<
      { status: OrderStatus; n: number }[]
    >`select status, count(*)::int as n from orders.orders group by status`)
      byStatus[r.status] += r.n;
  }
  return byStatus;
}

async function expectStatsMatchRows(): Promise<void> {
  const stats = await stratum.app.inject({ method: 'GET', url: '/orders/stats' });
  expect(stats.statusCode, stats.body).toBe(200);
  const counted = await countsByStatus();
  expect(stats.json()).toEqual({
    byStatus: counted,
    total: Object.values(counted).reduce((a, b) => a + b, 0),
    missingShards: [],
  });
}

describe('POST /orders, 64 at once for 4 hot customers', () => {
  it("stores every acknowledged order exactly once, on its customer's shard, with all its items, and nothing else", async () => {
    const requests = Array.from({ length: 64 }, (_, i) => ({ customerId: hotCustomers[i % 4]!, items: itemsFor(i) }));
    const answers = await burst(
      stratum.app,
      requests.map((payload) => ({ method: 'POST' as const, url: '/orders', payload })),
    );
    expectOnlyAllowed(answers, [201]);

    const acked = answers.map((a, i) => ({ a, request: requests[i]! })).filter(({ a }) => a.status === 201);
    expect(acked.length).toBeGreaterThan(0);
    expect(new Set(acked.map(({ a }) => a.body.id)).size).toBe(acked.length);
    for (const { a, request } of acked) {
      const expectedTotal = request.items.reduce((s, it) => s + it.quantity * Math.round(Number(it.price) * 100), 0);
      expect(a.body.totalAmount).toBe((expectedTotal / 100).toFixed(2));
      expect(await storedCopies(shards, a.body.id)).toEqual([
        {
          shard: await shardOfCustomer(db.sql, request.customerId),
          customerId: request.customerId,
          status: 'pending',
          totalAmount: a.body.totalAmount,
          items: request.items.map((it) => [it.productId, it.quantity, it.price]),
        },
      ]);
    }
    // Nothing unacknowledged was stored: per customer, the orders across every shard are exactly the 201s.
    for (const customer of hotCustomers) {
      const stored = (
        await Promise.all(
          shards.map((sql) => sql<{ id: string }[]>`select id from orders.orders where customer_id = ${customer}`),
        )
      )
        .flat()
        .map((r) => Number(r.id))
        .sort((x, y) => x - y);
      expect(stored).toEqual(
        acked
          .filter(({ request }) => request.customerId === customer)
          .map(({ a }) => a.body.id as number)
          .sort((x, y) => x - y),
      );
      const listed = await stratum.app.inject({ method: 'GET', url: `/orders?customerId=${customer}&limit=500` });
      expect(listed.json().items.map((o: { id: number }) => o.id)).toEqual([...stored].reverse());
    }
    expect(await strayItems(shards)).toBe(0);
    await expectStatsMatchRows();
  });
});

describe('PATCH /orders/:id, 65 at once on 5 hot orders', () => {
  const TARGETS: OrderStatus[] = ['processing', 'completed', 'cancelled', 'processing', 'pending'];

  it('acknowledges only a serial chain of valid transitions per order, and refuses only what was invalid then', async () => {
    const hot: Array<{ id: number; customerId: number }> = [];
    for (let k = 0; k < 5; k++) {
      const res = await stratum.app.inject({
        method: 'POST',
        url: '/orders',
        payload: { customerId: hotCustomers[k % 4]!, items: itemsFor(k) },
      });
      expect(res.statusCode, res.body).toBe(201);
      hot.push({ id: res.json().id, customerId: res.json().customerId });
    }
    const plan = Array.from({ length: 65 }, (_, i) => ({
      id: hot[i % 5]!.id,
      to: TARGETS[Math.floor(i / 5) % TARGETS.length]!,
    }));
    const answers = await burst(
      stratum.app,
      plan.map((p) => ({ method: 'PATCH' as const, url: `/orders/${p.id}`, payload: { status: p.to } })),
    );
    expectOnlyAllowed(answers, [200, 409]);

    for (const [i, a] of answers.entries()) {
      const { to } = plan[i]!;
      if (a.status === 200) expect(a.body.status).toBe(to);
      if (a.status === 409) {
        expect(a.code).toBe('ORDER.INVALID_TRANSITION');
        // Refused for a reason that held at that moment.
        expect(ALLOWED_TRANSITIONS[a.body.details.from as OrderStatus]).not.toContain(to);
      }
    }
    for (const { id, customerId } of hot) {
      const shard = shards[await shardOfCustomer(db.sql, customerId)]!;
      // The changes in commit order: each order's events are written after its row lock, so seq follows commits.
      const events = (
        await shard<{ payload: { from: OrderStatus; to: OrderStatus } }[]>`
        select payload from messaging.outbox where type = 'order.status_changed' and payload->>'id' = ${String(id)} order by seq`
      ).map((e) => e.payload);
      let current: OrderStatus = 'pending';
      for (const e of events) {
        expect(e.from).toBe(current);
        expect(ALLOWED_TRANSITIONS[e.from]).toContain(e.to);
        current = e.to;
      }
      const acknowledged = answers
        .filter((a, i) => plan[i]!.id === id && a.status === 200)
        .map((a) => a.body.status as OrderStatus);
      expect(acknowledged.sort()).toEqual(events.map((e) => e.to).sort());
      const copies = await storedCopies(shards, id);
      expect(copies.map((c) => c.status)).toEqual([current]);
      expect(copies[0]!.items).toHaveLength((hot.findIndex((h) => h.id === id) % 3) + 1);
    }
    await expectStatsMatchRows();
  });
});

describe('afterwards', () => {
  it('serves a fresh order normally', async () => {
    await expectFreshOrderServed(stratum.app, hotCustomers[0]!);
  });
});
