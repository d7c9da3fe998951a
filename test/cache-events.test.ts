import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { eventuallyAsync } from './messaging/contract.ts';

// Two app instances over one database, no Redis: the read caches hear of each other's writes through events.
let db: TestDatabase;
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  // A TTL far beyond the test's bounds: a stale entry could only go away through an invalidation.
  const overrides = { redisUrl: undefined, cacheTtlMs: 3_600_000 };
  a = await startTestApp(db, overrides);
  b = await startTestApp(db, overrides);
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  await db?.drop();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH';
const call = async (app: TestApp, method: Method, url: string, payload?: unknown) => {
  const res = await app.app.inject({ method, url, payload: payload as never });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
};

describe('read caches across instances without Redis', () => {
  it('shows on the other instance, once the event arrives, an account renamed on one', async () => {
    const created = await call(a, 'POST', '/accounts', { name: 'Alice' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await call(b, 'GET', `/accounts/${id}`)).body.name).toBe('Alice');

    // Changed behind the app's back (no event): B goes on serving its cached view.
    await db.sql`update accounts.accounts set name = 'Changed quietly' where id = ${id}`;
    expect((await call(b, 'GET', `/accounts/${id}`)).body.name).toBe('Alice');

    expect((await call(a, 'PUT', `/accounts/${id}`, { name: 'Alicia' })).status).toBe(200);
    await eventuallyAsync(
      async () => (await call(b, 'GET', `/accounts/${id}`)).body.name,
      (name) => name === 'Alicia',
      'instance B to show the new name',
    );
  });

  it("shows on the other instance, once the event arrives, an account's image changed on one", async () => {
    const created = await call(a, 'POST', '/accounts', { name: 'Imogen' });
    const id = created.body.id as string;
    expect((await call(a, 'PUT', `/accounts/${id}/image`, { url: 'https://example.com/first.png' })).status).toBe(200);
    await eventuallyAsync(
      async () => (await call(b, 'GET', `/accounts/${id}`)).body.imageData,
      (image) => String(JSON.stringify(image)).includes('first.png'),
      'instance B to show the first image',
    );
    expect((await call(a, 'PUT', `/accounts/${id}/image`, { url: 'https://example.com/second.png' })).status).toBe(200);
    await eventuallyAsync(
      async () => (await call(b, 'GET', `/accounts/${id}`)).body.imageData,
      (image) => String(JSON.stringify(image)).includes('second.png'),
      'instance B to show the new image',
    );
  });

  it('answers 404 on the other instance, once the event arrives, for an order deleted on one', async () => {
    const created = await call(a, 'POST', '/orders', {
      customerId: 8,
      items: [{ productId: 1, quantity: 1, price: '1.00' }],
    });
    const id = created.body.id as number;
    expect((await call(b, 'GET', `/orders/${id}`)).status).toBe(200);
    expect((await a.app.inject({ method: 'DELETE', url: `/orders/${id}` })).statusCode).toBe(204);
    await eventuallyAsync(
      async () => (await call(b, 'GET', `/orders/${id}`)).status,
      (status) => status === 404,
      'instance B to answer 404',
    );
  });

  it('shows on the other instance, once the event arrives, an order whose status changed on one', async () => {
    const created = await call(a, 'POST', '/orders', {
      customerId: 7,
      items: [{ productId: 1, quantity: 2, price: '3.50' }],
    });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    expect((await call(b, 'GET', `/orders/${id}`)).body.status).toBe('pending');

    for (const shard of await db.shards())
      await shard`update orders.orders set notes = 'changed quietly' where id = ${id}`;
    expect((await call(b, 'GET', `/orders/${id}`)).body.notes).toBeNull();

    expect((await call(a, 'PATCH', `/orders/${id}`, { status: 'processing' })).status).toBe(200);
    const seen = await eventuallyAsync(
      async () => (await call(b, 'GET', `/orders/${id}`)).body,
      (order) => order.status === 'processing',
      'instance B to show the new status',
    );
    expect(seen.notes).toBe('changed quietly');
  });
});
