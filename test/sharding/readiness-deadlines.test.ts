import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';

// Readiness that tells the truth (a shard that does not answer, a pool that keeps refusing callers) and
// recovers by itself; a checkout saga that outlives its request answers "pending" and still finishes.
// Four shards with one connection each and a 1.5 s request deadline.
const DEADLINE_MS = 1500;
let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];

beforeAll(async () => {
  db = await createTestDatabase();
  stratum = await startTestApp(db, { shardPoolMax: 1, txDeadlineMs: DEADLINE_MS });
  shards = await db.shards();
});

afterAll(async () => {
  await stratum?.close();
  await db?.drop();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT';
const inject = (method: Method, url: string, payload?: unknown) =>
  stratum.app.inject({ method, url, payload: payload as never });

async function shardOfCustomer(customerId: number): Promise<number> {
  const [row] = await db.sql<
    { shard_id: number }[]
  >`select shard_id from sharding.buckets where bucket = ${bucketOfKey(customerId)}`;
  return row!.shard_id;
}

async function shardDatabase(shardId: number): Promise<string> {
  const [row] = await db.sql<{ database: string }[]>`select database from sharding.shards where id = ${shardId}`;
  return row!.database;
}

async function waitReady(timeoutMs: number): Promise<void> {
  let last = '';
  await expect
    .poll(
      async () => {
        const r = await inject('GET', '/readyz');
        last = r.body;
        return r.statusCode;
      },
      { timeout: timeoutMs, interval: 200 },
    )
    .toBe(200)
    .catch((error: unknown) => {
      throw new Error(`still not ready: ${last}`, { cause: error });
    });
}

describe('/readyz', () => {
  it('is ready with the shards and the in-doubt and unfinished-saga counts', async () => {
    const res = await inject('GET', '/readyz');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().orders).toEqual({ shards: 4, inDoubt: 0, unfinishedSagas: 0 });
  });

  it('answers 503 DB.POOL_EXHAUSTED naming the shard pool while it keeps refusing callers, and is ready again by itself', async () => {
    const customerId = 7001;
    const created = await inject('POST', '/orders', {
      customerId,
      items: [{ productId: 1, quantity: 1, price: '1.00' }],
    });
    expect(created.statusCode, created.body).toBe(201);
    const shardId = await shardOfCustomer(customerId);
    // The order's row is locked from outside: the first PATCH holds the shard's one connection waiting for the
    // lock, the others wait for that connection until their deadline and are refused.
    const locker = await shards[shardId]!.reserve();
    try {
      await locker`begin`;
      await locker`select 1 from orders.orders where id = ${created.json().id} for update`;
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => inject('PATCH', `/orders/${created.json().id}`, { status: 'processing' })),
      );
      const codes = answers.map((a) => a.json().code as string);
      expect(codes.filter((c) => c === 'DB.POOL_EXHAUSTED').length, codes.join(',')).toBeGreaterThanOrEqual(4);
      const ready = await inject('GET', '/readyz');
      expect(ready.statusCode).toBe(503);
      expect(ready.headers['retry-after']).toBeDefined();
      expect(ready.json()).toMatchObject({
        code: 'DB.POOL_EXHAUSTED',
        details: { pools: [{ name: `shard-${shardId}`, max: 1 }] },
      });
    } finally {
      await locker`rollback`;
      locker.release();
    }
    await waitReady(8000);
    const after = await inject('PATCH', `/orders/${created.json().id}`, { status: 'processing' });
    expect([200, 409]).toContain(after.statusCode);
  });

  it('answers 503 SHARD.UNAVAILABLE naming a shard that refuses connections, and is ready again once it takes them', async () => {
    const database = await shardDatabase(2);
    await db.sql.unsafe(`alter database ${database} allow_connections false`);
    try {
      await db.sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${database} and pid <> pg_backend_pid()`;
      await expect
        .poll(async () => (await inject('GET', '/readyz')).json().code, { timeout: 5000, interval: 200 })
        .toBe('SHARD.UNAVAILABLE');
      const res = await inject('GET', '/readyz');
      expect(res.statusCode).toBe(503);
      expect(res.json().details.shards).toEqual([{ id: 2, name: database }]);
    } finally {
      await db.sql.unsafe(`alter database ${database} allow_connections true`);
    }
    await waitReady(8000);
  });
});

describe('a checkout that outlives its request', () => {
  it('answers 503 SAGA.PENDING with its saga id at the deadline, then finishes compensating; GET /orders/checkout/:id tells', async () => {
    const customerId = 7100;
    const productId = 990;
    expect((await inject('PUT', `/inventory/${productId}`, { available: 3 })).statusCode).toBe(204);
    const shard = shards[await shardOfCustomer(customerId)]!;
    // The payment never answers: the charge step fails before the deadline and the saga compensates. Releasing
    // the stock waits on a lock held here on the inventory row, so the request's deadline passes first.
    const checkout = inject('POST', '/orders/checkout', {
      customerId,
      items: [{ productId, quantity: 2, price: '4.00' }],
      paymentToken: 'tok_timeout',
    });
    const locker = await shard.reserve();
    let res: Awaited<typeof checkout>;
    try {
      await expect
        .poll(
          async () =>
            (await shard`select count(*)::int as n from orders.stock_reservations where product_id = ${productId}`)[0]!
              .n,
          { timeout: DEADLINE_MS, interval: 20 },
        )
        .toBe(1);
      await locker`begin`;
      await locker`select 1 from orders.inventory where product_id = ${productId} for update`;
      res = await checkout;
    } finally {
      await locker`rollback`.catch(() => {});
      locker.release();
    }
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    const sagaId = res.json().details.sagaId as string;
    expect(res.json()).toMatchObject({ code: 'SAGA.PENDING', details: { outcome: 'pending' } });
    await expect
      .poll(async () => (await inject('GET', `/orders/checkout/${sagaId}`)).json().status, {
        timeout: 5000,
        interval: 100,
      })
      .toBe('compensated');
    const status = (await inject('GET', `/orders/checkout/${sagaId}`)).json();
    expect(status).toMatchObject({ sagaId, failedStep: 'charge-payment' });
    expect((await inject('GET', `/orders/${status.orderId}`)).json().status).toBe('cancelled');
    expect((await shard`select available from orders.inventory where product_id = ${productId}`)[0]!.available).toBe(3);
    expect((await inject('GET', '/readyz')).json().orders.unfinishedSagas).toBe(0);
  });

  it('answers 404 SAGA.NOT_FOUND for an unknown saga and 400 for an id that is not one', async () => {
    const unknown = await inject('GET', '/orders/checkout/00000000-0000-4000-8000-000000000000');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('SAGA.NOT_FOUND');
    const bad = await inject('GET', '/orders/checkout/not-a-uuid');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('REQUEST.INVALID');
  });
});
