import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { serveStratum, type Served } from '../support/child.ts';

// Real processes killed with SIGKILL at named points (STRATUM_FAULTS), then a fresh process finishing their work.
let db: TestDatabase;
let shards: Sql[];

beforeAll(async () => {
  db = await createTestDatabase();
  // A first start creates the shards.
  const first = await serveStratum({ DATABASE_URL: db.url });
  await stop(first);
  shards = await db.shards();
});

afterAll(async () => {
  await db?.drop();
});

async function stop(served: Served): Promise<void> {
  served.child.kill('SIGTERM');
  await served.exited;
}

async function call(
  served: Served,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${served.url}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json().catch(() => undefined) };
}

async function shardOfCustomer(customerId: number): Promise<number> {
  const [row] = await db.sql<
    { shard_id: number }[]
  >`select shard_id from sharding.buckets where bucket = ${bucketOfKey(customerId)}`;
  return row!.shard_id;
}

async function customersOnTwoShards(from: number): Promise<[number, number]> {
  let b = from + 1;
  while ((await shardOfCustomer(b)) === (await shardOfCustomer(from))) b++;
  return [from, b];
}

async function ordersOf(customerId: number): Promise<Array<{ id: string; items: number }>> {
  const sql = shards[await shardOfCustomer(customerId)]!;
  return sql<
    { id: string; items: number }[]
  >`select id::text, (select count(*)::int from orders.order_items i where i.order_id = o.id) as items
    from orders.orders o where customer_id = ${customerId}`;
}

async function prepared(): Promise<string[]> {
  return (
    await Promise.all(
      shards.map(
        (sql) => sql<{ gid: string }[]>`select gid from pg_prepared_xacts where database = current_database()`,
      ),
    )
  )
    .flat()
    .map((r) => r.gid);
}

describe('a transfer killed in the middle of its two-phase commit', () => {
  it('killed after COMMIT PREPARED on one shard only: a restart commits the other, the order moved exactly once', async () => {
    const [a, b] = await customersOnTwoShards(10_000);
    const doomed = await serveStratum({ DATABASE_URL: db.url, STRATUM_FAULTS: '2pc:committed-one' });
    const order = await call(doomed, 'POST', '/orders', {
      customerId: a,
      items: [
        { productId: 1, quantity: 2, price: '3.00' },
        { productId: 2, quantity: 1, price: '1.00' },
      ],
    });
    expect(order.status).toBe(201);
    await expect(call(doomed, 'POST', `/orders/${order.json.id}/transfer`, { toCustomerId: b })).rejects.toThrow();
    expect((await doomed.exited).signal).toBe('SIGKILL');
    expect(await prepared()).toHaveLength(1); // one branch committed, one in doubt
    expect((await db.sql`select decision from sharding.decisions`).map((r) => r.decision)).toEqual(['commit']);

    const restarted = await serveStratum({ DATABASE_URL: db.url, IN_DOUBT_GRACE_MS: '0' });
    try {
      expect(await prepared()).toEqual([]);
      expect(await ordersOf(a)).toEqual([]);
      const moved = await ordersOf(b);
      expect(moved).toHaveLength(1);
      expect(moved[0]!.items).toBe(2);
      const read = await call(restarted, 'GET', `/orders/${moved[0]!.id}`);
      expect(read.json).toMatchObject({ customerId: b, totalAmount: '7.00' });
      expect((await db.sql`select count(*)::int as n from sharding.decisions`)[0]!.n).toBe(0);
    } finally {
      await stop(restarted);
    }
  });

  it('killed after both shards prepared but before the decision: a restart rolls both back, the order stays', async () => {
    const [a, b] = await customersOnTwoShards(20_000);
    const doomed = await serveStratum({ DATABASE_URL: db.url, STRATUM_FAULTS: '2pc:prepared' });
    const order = await call(doomed, 'POST', '/orders', {
      customerId: a,
      items: [{ productId: 1, quantity: 1, price: '1.00' }],
    });
    await expect(call(doomed, 'POST', `/orders/${order.json.id}/transfer`, { toCustomerId: b })).rejects.toThrow();
    await doomed.exited;
    expect(await prepared()).toHaveLength(2);

    const restarted = await serveStratum({ DATABASE_URL: db.url, IN_DOUBT_GRACE_MS: '0' });
    try {
      expect(await prepared()).toEqual([]);
      expect((await ordersOf(a)).map((o) => o.id)).toEqual([String(order.json.id)]);
      expect(await ordersOf(b)).toEqual([]);
      // The aborted transfer can be made again, and goes through.
      expect((await call(restarted, 'POST', `/orders/${order.json.id}/transfer`, { toCustomerId: b })).status).toBe(
        200,
      );
      expect(await ordersOf(b)).toHaveLength(1);
    } finally {
      await stop(restarted);
    }
  });
});

describe('a checkout saga killed mid-way', () => {
  it('killed after reserving stock: a restart resumes it once its lease ran out; stock taken and payment charged once', async () => {
    const customer = 30_000;
    const setup = await serveStratum({ DATABASE_URL: db.url });
    expect((await call(setup, 'PUT', '/inventory/77', { available: 10 })).status).toBe(204);
    await stop(setup);

    const doomed = await serveStratum({
      DATABASE_URL: db.url,
      STRATUM_FAULTS: 'saga:ran:reserve-stock',
      SAGA_LEASE_MS: '500',
    });
    await expect(
      call(doomed, 'POST', '/orders/checkout', {
        customerId: customer,
        items: [{ productId: 77, quantity: 3, price: '2.50' }],
        paymentToken: 'tok_ok',
      }),
    ).rejects.toThrow();
    await doomed.exited;
    const [saga] = await db.sql<
      { id: string; status: string }[]
    >`select id, status from sharding.sagas where state->>'customerId' = ${String(customer)}`;
    expect(saga!.status).toBe('running');

    await new Promise((r) => setTimeout(r, 600)); // the dead process's lease runs out
    const restarted = await serveStratum({ DATABASE_URL: db.url, SAGA_LEASE_MS: '500' });
    try {
      expect((await db.sql`select status from sharding.sagas where id = ${saga!.id}`)[0]!.status).toBe('completed');
      const sql = shards[await shardOfCustomer(customer)]!;
      expect((await sql`select available from orders.inventory where product_id = 77`)[0]!.available).toBe(7);
      expect(
        (await sql`select count(*)::int as n from orders.stock_reservations where saga_id = ${saga!.id}`)[0]!.n,
      ).toBe(1);
      const orders = await sql<{ status: string }[]>`select status from orders.orders where saga_id = ${saga!.id}`;
      expect(orders.map((o) => o.status)).toEqual(['processing']);
      expect(
        (await db.sql`select status from payments.simulated_charges where idempotency_key = ${saga!.id}`).map(
          (r) => r.status,
        ),
      ).toEqual(['charged']);
    } finally {
      await stop(restarted);
    }
  });
});
