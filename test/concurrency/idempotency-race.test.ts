import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { burst, closeAndDrop, expectOnlyAllowed, type Answer } from './support.ts';

// 50 creations at once under one Idempotency-Key, on every creation that takes one (POST /users, /accounts,
// /orders), over small pools (3 administrative, 5 per context, 2 per shard): one thing is created, and every
// successful answer is that creation's answer.
let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 3 });
  stratum = await startTestApp(db, { poolMax: 3, shardPoolMax: 2, ordersShardCount: 4 });
  shards = await db.shards();
  const seed = await stratum.app.inject({
    method: 'POST',
    url: '/users',
    payload: { username: 'seed', score: 0, profile: { firstname: 'S', lastname: 'S' } },
  });
  expect(seed.statusCode, seed.body).toBe(201);
});

afterAll(async () => {
  await closeAndDrop(stratum, db);
});

interface Creation {
  url: string;
  body: (variant: number) => Record<string, unknown>;
  /** How many things the body of `variant` created. */
  count: (variant: number) => Promise<number>;
}

/** Orders of `customerId` whose item has `quantity` (variants differ by quantity). */
const orderCount = async (customerId: number, quantity: number) =>
  (
    await Promise.all(
      shards.map(
        (sql) => sql<{ n: number }[]>`
  select count(*)::int as n from orders.orders o where customer_id = ${customerId}
    and exists (select 1 from orders.order_items i where i.order_id = o.id and i.quantity = ${quantity})`,
      ),
    )
  ).reduce((s, [r]) => s + r!.n, 0);
const orderCustomer = (v: number) => (v === 0 ? 7000 : 7001);

const CREATIONS: Record<string, Creation> = {
  'POST /users': {
    url: '/users',
    body: (v) => ({ username: `idem_user_${v}`, score: 1, profile: { firstname: 'I', lastname: `D${v}` } }),
    count: async (v) =>
      (
        await db.sql<{ n: number }[]>`select count(*)::int as n from users.users where username = ${`idem_user_${v}`}`
      )[0]!.n,
  },
  'POST /accounts': {
    url: '/accounts',
    body: (v) => ({ name: `Idem_account_${v}` }),
    count: async (v) =>
      (
        await db.sql<
          { n: number }[]
        >`select count(*)::int as n from accounts.accounts where name = ${`Idem_account_${v}`}`
      )[0]!.n,
  },
  'POST /orders': {
    url: '/orders',
    // One customer for the competing variants: an order's key is unique per customer's shard (decision 0022).
    body: (v) => ({ customerId: orderCustomer(v), items: [{ productId: 3, quantity: 1 + v, price: '4.00' }] }),
    count: (v) => orderCount(orderCustomer(v), 1 + v),
  },
};

const send = (creation: Creation, key: string, variants: number[]): Promise<Answer[]> =>
  burst(
    stratum.app,
    variants.map((v) => ({
      method: 'POST' as const,
      url: creation.url,
      payload: creation.body(v),
      headers: { 'idempotency-key': key },
    })),
  );

/** The 201s: all one body, and exactly one of them the creation itself (not a replay). */
function expectOneCreationAnswered(answers: Answer[]): Answer[] {
  const created = answers.filter((a) => a.status === 201);
  expect(created.length).toBeGreaterThan(0);
  for (const a of created) expect(a.body).toEqual(created[0]!.body);
  expect(created.filter((a) => !a.replayed)).toHaveLength(1);
  return created;
}

describe.each(Object.keys(CREATIONS))('%s, 50 at once with one Idempotency-Key', (name) => {
  const creation = CREATIONS[name]!;

  it('the same request 50 times: creates once, every success answers the same body', async () => {
    const answers = await send(
      creation,
      `race-same-${creation.url}`,
      Array.from({ length: 50 }, () => 0),
    );
    expectOnlyAllowed(answers, [201, 409]);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.code).toBe('DB.CONFLICT');
    expectOneCreationAnswered(answers);
    expect(await creation.count(0)).toBe(1);
  });

  it('two different requests 25 times each under one key: one of them creates once, the other is refused', async () => {
    const variants = Array.from({ length: 50 }, (_, i) => 1 + (i % 2));
    const answers = await send(creation, `race-two-${creation.url}`, variants);
    expectOnlyAllowed(answers, [201, 409, 422]);
    const created = expectOneCreationAnswered(answers);
    const winner = variants[answers.indexOf(created[0]!)]!;
    const loser = winner === 1 ? 2 : 1;
    for (const [i, a] of answers.entries()) {
      if (a.status === 422) expect([variants[i], a.code]).toEqual([loser, 'IDEMPOTENCY.KEY_REUSED']);
      if (a.status === 201) expect(variants[i]).toBe(winner);
    }
    expect([await creation.count(winner), await creation.count(loser)]).toEqual([1, 0]);
  });
});

describe('afterwards', () => {
  it('the fan-out of POST /users ran once per user created (the seed moved by the two creations only)', async () => {
    const users = await db.sql<
      { username: string; score: string }[]
    >`select username, score::text as score from users.users order by id`;
    expect(users.map((u) => u.username)).toHaveLength(3);
    // seed: 0 -> 1 + 0 + 0/1 = 1 -> 1 + 1 + 1/2 = 2.5
    expect(users[0]).toEqual({ username: 'seed', score: '2.5' });
  });

  it('a key used once more replays, and a fresh key creates normally', async () => {
    const again = await send(CREATIONS['POST /orders']!, 'race-same-/orders', [0]);
    expect([again[0]!.status, again[0]!.replayed]).toEqual([201, true]);
    const fresh = await send(CREATIONS['POST /orders']!, 'fresh-key', [5]);
    expect([fresh[0]!.status, fresh[0]!.replayed]).toEqual([201, false]);
    expect(await orderCount(orderCustomer(5), 6)).toBe(1);
  });
});
