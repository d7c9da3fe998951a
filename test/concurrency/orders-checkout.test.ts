import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import {
  burst,
  closeAndDrop,
  customersByShard,
  expectFreshOrderServed,
  expectOnlyAllowed,
  shardOfCustomer,
  unfinishedSagas,
  type Answer,
} from './support.ts';

// 60 checkout sagas at once for 3 hot customers (on 3 shards, pools of 2, a catalog pool of 4) competing for the
// stock of 2 hot products: payments that succeed, are declined (tok_decline) or never answer (tok_timeout).
// Leases and in-doubt grace are short, so whatever a failed compensation left is resumed within seconds.
const STOCK = { 900: 20, 901: 8 } as const;
type Product = keyof typeof STOCK;
const PRODUCTS = Object.keys(STOCK).map(Number) as Product[];

let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];
let hot: number[];

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 4 });
  stratum = await startTestApp(db, {
    poolMax: 4,
    shardPoolMax: 2,
    ordersShardCount: 4,
    sagaLeaseMs: 2000,
    inDoubtGraceMs: 2000,
  });
  shards = await db.shards();
  hot = (await customersByShard(db.sql, 4, 1, 40)).flat().slice(0, 3);
  for (const product of PRODUCTS) {
    const res = await stratum.app.inject({
      method: 'PUT',
      url: `/inventory/${product}`,
      payload: { available: STOCK[product] },
    });
    expect(res.statusCode, res.body).toBe(204);
  }
});

afterAll(async () => {
  await closeAndDrop(stratum, db);
});

interface Checkout {
  customerId: number;
  items: Array<{ productId: Product; quantity: number; price: string }>;
  paymentToken: string;
}

function checkouts(): Checkout[] {
  return Array.from({ length: 60 }, (_, i) => {
    const items: Checkout['items'] = [{ productId: 900, quantity: (i % 3) + 1, price: '5.00' }];
    if (i % 2 === 0) items.push({ productId: 901, quantity: 1, price: '2.00' });
    const paymentToken = i % 10 === 7 || i % 10 === 8 ? 'tok_decline' : i % 10 === 9 ? 'tok_timeout' : 'tok_ok';
    return { customerId: hot[i % 3]!, items, paymentToken };
  });
}

describe('POST /orders/checkout, 60 at once on 2 hot products', () => {
  let plan: Checkout[];
  let answers: Answer[];
  const completed = () => plan.map((c, i) => ({ c, a: answers[i]! })).filter(({ a }) => a.status === 201);

  beforeAll(async () => {
    plan = checkouts();
    answers = await burst(
      stratum.app,
      plan.map((payload) => ({ method: 'POST' as const, url: '/orders/checkout', payload })),
    );
    // On a loaded machine the burst may shed every checkout (503 with Retry-After, nothing kept); one more, alone,
    // must then go through. It joins the plan, so every invariant below counts it.
    if (!answers.some((a) => a.status === 201)) {
      const alone: Checkout = {
        customerId: hot[0]!,
        items: [{ productId: 900, quantity: 1, price: '5.00' }],
        paymentToken: 'tok_ok',
      };
      plan.push(alone);
      answers.push(...(await burst(stratum.app, [{ method: 'POST', url: '/orders/checkout', payload: alone }])));
    }
  });

  it('answers 201, 402 declined, 409 out of stock, or 503 with Retry-After, each for its own reason', () => {
    expectOnlyAllowed(answers, [201, 402, 409]);
    for (const [i, a] of answers.entries()) {
      const { paymentToken } = plan[i]!;
      if (a.status === 201) {
        expect(paymentToken).toBe('tok_ok');
        expect(a.body.order.status).toBe('processing');
      }
      if (a.status === 402) expect([paymentToken, a.code]).toEqual(['tok_decline', 'PAYMENT.DECLINED']);
      if (a.status === 409) expect(a.code).toBe('STOCK.INSUFFICIENT');
      if (paymentToken === 'tok_timeout') expect([409, 503]).toContain(a.status);
    }
    expect(completed().length).toBeGreaterThan(0);
  });

  it('leaves no saga running or compensating once the answers are in', async () => {
    await expect.poll(() => unfinishedSagas(db.sql), { timeout: 20_000, interval: 200 }).toEqual([]);
  });

  it('charges exactly the completed checkouts, and completes exactly the acknowledged ones', async () => {
    const acknowledged = completed()
      .map(({ a }) => a.body.sagaId as string)
      .sort();
    const charged = await db.sql<
      { key: string }[]
    >`select idempotency_key as key from payments.simulated_charges where status = 'charged' order by 1`;
    expect(charged.map((c) => c.key).sort()).toEqual(acknowledged);
    const done = await db.sql<{ id: string }[]>`select id::text from sharding.sagas where status = 'completed'`;
    expect(done.map((d) => d.id).sort()).toEqual(acknowledged);
    for (const { a } of completed()) {
      expect(
        (
          await db.sql<
            { n: number }[]
          >`select count(*)::int as n from payments.simulated_charges where idempotency_key = ${a.body.sagaId}`
        )[0]!.n,
      ).toBe(1);
    }
  });

  it('keeps stock at or above zero: the initial stock minus what the completed checkouts reserved', async () => {
    for (const [s, sql] of shards.entries()) {
      const onShard = [];
      for (const { c, a } of completed())
        if ((await shardOfCustomer(db.sql, c.customerId)) === s) onShard.push({ c, a });
      for (const product of PRODUCTS) {
        const [row] = await sql<
          { available: number }[]
        >`select available from orders.inventory where product_id = ${product}`;
        const taken = onShard.reduce(
          (sum, { c }) => sum + c.items.filter((it) => it.productId === product).reduce((q, it) => q + it.quantity, 0),
          0,
        );
        expect(row!.available).toBeGreaterThanOrEqual(0);
        expect(row!.available, `product ${product} on shard ${s}`).toBe(STOCK[product] - taken);
      }
      // Reservations are held only by completed sagas, and add up to what was taken.
      const held = await sql<{ saga_id: string }[]>`select distinct saga_id::text from orders.stock_reservations`;
      expect(held.map((h) => h.saga_id).sort()).toEqual(onShard.map(({ a }) => a.body.sagaId as string).sort());
    }
  });

  it("leaves every saga's order processing when it completed and cancelled when it did not", async () => {
    const outcome = new Map(
      (await db.sql<{ id: string; status: string }[]>`select id::text, status from sharding.sagas`).map((r) => [
        r.id,
        r.status,
      ]),
    );
    const orders = (
      await Promise.all(
        shards.map(
          (sql) => sql<{ saga_id: string; status: string }[]>`
      select saga_id::text, status from orders.orders where saga_id is not null`,
        ),
      )
    ).flat();
    expect(new Set(orders.map((o) => o.saga_id)).size).toBe(orders.length);
    for (const o of orders)
      expect([o.saga_id, o.status]).toEqual([
        o.saga_id,
        outcome.get(o.saga_id) === 'completed' ? 'processing' : 'cancelled',
      ]);
    for (const { a } of completed()) expect(orders.some((o) => o.saga_id === a.body.sagaId)).toBe(true);
  });

  it('still serves a fresh order and a fresh checkout normally', async () => {
    await expectFreshOrderServed(stratum.app, hot[0]!);
    const stocked = await stratum.app.inject({ method: 'PUT', url: '/inventory/902', payload: { available: 1 } });
    expect(stocked.statusCode, stocked.body).toBe(204);
    const res = await stratum.app.inject({
      method: 'POST',
      url: '/orders/checkout',
      payload: { customerId: hot[1]!, items: [{ productId: 902, quantity: 1, price: '1.00' }], paymentToken: 'tok_ok' },
    });
    expect(res.statusCode, res.body).toBe(201);
  });
});
