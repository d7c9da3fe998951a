import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import {
  burst,
  closeAndDrop,
  customersByShard,
  decisionsWithoutBranches,
  expectFreshOrderServed,
  expectOnlyAllowed,
  preparedLeft,
  shardOfCustomer,
  storedCopies,
  strayItems,
  tally,
  type StoredOrder,
} from './support.ts';

// Transfers, 60 at once on 4 shards with pools of 2: 15 on each of 4 hot orders (one per shard), or one on
// each of 60 orders; within a shard (one local transaction) and across shards (two-phase commit, two pools at
// once). Of the transfers of one order id exactly one can win; the others find it gone (404). In-doubt
// branches are aborted after 2 s.
let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];
let customers: number[][];
let created = 0;

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 4 });
  stratum = await startTestApp(db, { poolMax: 4, shardPoolMax: 2, ordersShardCount: 4, inDoubtGraceMs: 2000 });
  shards = await db.shards();
  customers = await customersByShard(db.sql, 4, 3, 30);
});

afterAll(async () => {
  await closeAndDrop(stratum, db);
});

interface Hot {
  id: number;
  before: StoredOrder;
}

async function createHot(customerId: number, k: number): Promise<Hot> {
  const items = [
    { productId: 10 + k, quantity: 2, price: '3.50' },
    { productId: 20 + k, quantity: 1, price: `${k}.25` },
  ];
  const res = await stratum.app.inject({ method: 'POST', url: '/orders', payload: { customerId, items } });
  expect(res.statusCode, res.body).toBe(201);
  created += 1;
  const [before] = await storedCopies(shards, res.json().id);
  return { id: res.json().id, before: before! };
}

async function ordersStored(): Promise<number> {
  return (
    await Promise.all(
      shards.map(async (sql) => (await sql<{ n: number }[]>`select count(*)::int as n from orders.orders`)[0]!.n),
    )
  ).reduce((a, b) => a + b, 0);
}

/**
 * Sends `each` transfers of every order at once (targets chosen per order and attempt) and checks, per order:
 * at most one 200; moved, it exists once, on its new customer's shard, with its items and total, and its old
 * id forwards; not moved, it is unchanged. Returns the orders where they are now.
 */
async function transferAtOnce(
  hot: Hot[],
  each: number,
  targetOf: (order: Hot, attempt: number) => number,
): Promise<Hot[]> {
  const plan = Array.from({ length: each * hot.length }, (_, i) => ({
    order: hot[i % hot.length]!,
    to: targetOf(hot[i % hot.length]!, Math.floor(i / hot.length)),
  }));
  const answers = await burst(
    stratum.app,
    plan.map((p) => ({
      method: 'POST' as const,
      url: `/orders/${p.order.id}/transfer`,
      payload: { toCustomerId: p.to },
    })),
  );
  expectOnlyAllowed(answers, [200, 404]);
  for (const a of answers.filter((x) => x.status === 404)) expect(a.code).toBe('ORDER.NOT_FOUND');

  const now: Hot[] = [];
  for (const order of hot) {
    const won = plan.map((p, i) => ({ ...p, a: answers[i]! })).filter((x) => x.order === order && x.a.status === 200);
    expect(won.length, `transfers of ${order.id}: ${tally(answers)}`).toBeLessThanOrEqual(1);
    if (won.length === 0) {
      expect(await storedCopies(shards, order.id)).toEqual([order.before]);
      now.push(order);
      continue;
    }
    const { a, to } = won[0]!;
    const moved = a.body as { id: number; customerId: number; totalAmount: string };
    expect(moved.customerId).toBe(to);
    expect(await storedCopies(shards, order.id)).toEqual([]);
    const after = await storedCopies(shards, moved.id);
    expect(after).toEqual([{ ...order.before, shard: await shardOfCustomer(db.sql, to), customerId: to }]);
    const old = await stratum.app.inject({ method: 'GET', url: `/orders/${order.id}` });
    expect(old.statusCode, old.body).toBe(301);
    expect(old.headers.location).toBe(`/orders/${moved.id}`);
    now.push({ id: moved.id, before: after[0]! });
  }
  // No order was lost or duplicated, and every item is with its order.
  expect(await ordersStored()).toBe(created);
  expect(await strayItems(shards)).toBe(0);
  return now;
}

/** Prepared branches are finished or aborted (deadline + grace + one maintenance round), and no decision is left over. */
async function expectTwoPhaseSettled(): Promise<void> {
  await expect.poll(() => preparedLeft(shards), { timeout: 20_000, interval: 200 }).toEqual([]);
  await expect.poll(() => decisionsWithoutBranches(db.sql, shards), { timeout: 20_000, interval: 200 }).toEqual([]);
}

describe('POST /orders/:id/transfer, 60 at once', () => {
  let moved: Hot[];

  it('within a shard: each order moves at most once, whole, to the customer that was acknowledged', async () => {
    const hot = await Promise.all(customers.map((onShard, s) => createHot(onShard[0]!, s)));
    // Targets on the order's own shard: the other two customers there.
    const shardOf = (order: Hot) => order.before.shard;
    await transferAtOnce(hot, 15, (order, attempt) => customers[shardOf(order)]![1 + (attempt % 2)]!);
    expect(await preparedLeft(shards)).toEqual([]);
  });

  it('across shards: each order moves at most once, whole; no branch stays prepared, no decision is left', async () => {
    const hot = await Promise.all(customers.map((onShard, s) => createHot(onShard[0]!, 4 + s)));
    moved = await transferAtOnce(
      hot,
      15,
      (order, attempt) => customers[(order.before.shard + 1 + (attempt % 3)) % 4]![attempt % 3]!,
    );
    await expectTwoPhaseSettled();
  });

  it('across shards, 60 different orders at once: each moves exactly once, whole', async () => {
    const orders: Hot[] = [];
    for (let k = 0; k < 60; k++) orders.push(await createHot(customers[k % 4]![k % 3]!, 100 + k));
    const now = await transferAtOnce(
      orders,
      1,
      (order) => customers[(order.before.shard + 1 + (order.id % 3)) % 4]![0]!,
    );
    expect(now.filter((o, k) => o.id !== orders[k]!.id).length).toBeGreaterThan(0);
    await expectTwoPhaseSettled();
  });

  it('again on the moved orders, within and across shards: each ends with the last acknowledged customer', async () => {
    expect(moved).toBeDefined();
    await transferAtOnce(moved, 15, (order, attempt) => {
      const shard = attempt % 2 === 0 ? order.before.shard : (order.before.shard + attempt) % 4;
      return customers[shard]!.find((c) => c !== order.before.customerId)!;
    });
    await expectTwoPhaseSettled();
  });

  it('still serves a fresh order and a fresh cross-shard transfer normally', async () => {
    await expectFreshOrderServed(stratum.app, customers[0]![0]!);
    const order = await createHot(customers[1]![0]!, 99);
    const res = await stratum.app.inject({
      method: 'POST',
      url: `/orders/${order.id}/transfer`,
      payload: { toCustomerId: customers[2]![0]! },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(await preparedLeft(shards)).toEqual([]);
  });
});
