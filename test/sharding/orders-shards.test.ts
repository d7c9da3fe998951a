import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { bucketOfId, bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';

// The orders context over 4 shard databases of the test server, with a short per-shard deadline.
let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];

beforeAll(async () => {
  db = await createTestDatabase();
  stratum = await startTestApp(db, { shardDeadlineMs: 500 });
  shards = await db.shards();
});

afterAll(async () => {
  await stratum?.close();
  await db?.drop();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
const inject = (method: Method, url: string, payload?: unknown) =>
  stratum.app.inject({ method, url, payload: payload as never });

interface OrderOut {
  id: number;
  customerId: number;
  status: string;
  totalAmount: string;
  items: Array<{ productId: number; quantity: number; price: string }>;
}

async function createOrder(
  customerId: number,
  items = [{ productId: 1, quantity: 2, price: '10.50' }],
): Promise<OrderOut> {
  const res = await inject('POST', '/orders', { customerId, items });
  expect(res.statusCode).toBe(201);
  return res.json();
}

/** The shard id the catalog maps a customer to. */
async function shardOfCustomer(customerId: number): Promise<number> {
  const [row] = await db.sql<
    { shard_id: number }[]
  >`select shard_id from sharding.buckets where bucket = ${bucketOfKey(customerId)}`;
  return row!.shard_id;
}

/** Two customers on different shards, and one more on the first one's shard. */
async function customersOnTwoShards(from: number): Promise<{ a: number; b: number; sameAsA: number }> {
  const a = from;
  let b = a + 1;
  while ((await shardOfCustomer(b)) === (await shardOfCustomer(a))) b++;
  let sameAsA = b + 1;
  while ((await shardOfCustomer(sameAsA)) !== (await shardOfCustomer(a))) sameAsA++;
  return { a, b, sameAsA };
}

async function rowsOf(id: number): Promise<Array<{ shard: number; customer: string; items: number }>> {
  const found = await Promise.all(
    shards.map(async (sql, shard) =>
      (
        await sql<{ customer: string; items: number }[]>`
    select customer_id::text as customer, (select count(*)::int from orders.order_items where order_id = o.id) as items from orders.orders o where id = ${id}`
      ).map((r) => ({ shard, ...r })),
    ),
  );
  return found.flat();
}

async function preparedLeft(): Promise<number> {
  const counts = await Promise.all(
    shards.map(
      async (sql) =>
        (
          await sql<
            { n: number }[]
          >`select count(*)::int as n from pg_prepared_xacts where database = current_database()`
        )[0]!.n,
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

describe('placement', () => {
  it('registers 4 shards with every bucket on one of them, stamped with their id', async () => {
    expect(shards).toHaveLength(4);
    const map = await db.sql<
      { shard_id: number; n: number }[]
    >`select shard_id, count(*)::int as n from sharding.buckets group by shard_id order by shard_id`;
    expect(map.map((m) => m.shard_id)).toEqual([0, 1, 2, 3]);
    expect(map.reduce((s, m) => s + m.n, 0)).toBe(1024);
    for (const [id, sql] of shards.entries()) {
      expect((await sql`select shard_id from shard.info`)[0]!.shard_id).toBe(id);
      const owned = (await sql<{ n: number }[]>`select count(*)::int as n from shard.owned_buckets`)[0]!.n;
      expect(owned).toBe(map[id]!.n);
    }
  });

  it("stores an order on its customer's shard, with an id that names the bucket and is unique across shards", async () => {
    const orders = await Promise.all(Array.from({ length: 40 }, (_, i) => createOrder(100 + i)));
    expect(new Set(orders.map((o) => o.id)).size).toBe(40);
    for (const order of orders) {
      expect(bucketOfId(order.id)).toBe(bucketOfKey(order.customerId));
      const rows = await rowsOf(order.id);
      expect(rows).toEqual([
        { shard: await shardOfCustomer(order.customerId), customer: String(order.customerId), items: 1 },
      ]);
      const read = await inject('GET', `/orders/${order.id}`);
      expect(read.statusCode).toBe(200);
      expect(read.json().id).toBe(order.id);
    }
    const used = new Set(await Promise.all(orders.map((o) => shardOfCustomer(o.customerId))));
    expect(used.size).toBe(4);
  });

  it('refuses a start when a shard is on a schema this build does not know, naming the shard', async () => {
    await shards[2]!`insert into stratum.schema_migrations (context, version, name, checksum) values ('orders', 999, 'from_the_future', 'x')`;
    try {
      const error = await startTestApp(db).then(
        (app) => app.close().then(() => undefined),
        (e: unknown) => e,
      );
      expect((error as { code?: string }).code).toBe('SHARD.SCHEMA');
      expect((error as Error).message).toMatch(/shard 2 .*_orders_2/);
    } finally {
      await shards[2]!`delete from stratum.schema_migrations where version = 999`;
    }
  });
});

describe('events of shard writes', () => {
  it("are relayed from the shard's own outbox to the broker", async () => {
    const order = await createOrder(777);
    const shard = shards[await shardOfCustomer(777)]!;
    let sent = false;
    for (let i = 0; i < 100 && !sent; i++) {
      const [row] = await shard<
        { sent: boolean }[]
      >`select sent_at is not null as sent from messaging.outbox where type = 'order.created' and payload->>'id' = ${String(order.id)}`;
      sent = row?.sent ?? false;
      if (!sent) await new Promise((r) => setTimeout(r, 100));
    }
    expect(sent).toBe(true);
    const logged =
      await db.sql`select 1 from messaging.log where event->>'type' = 'order.created' and event->'payload'->>'id' = ${String(order.id)}`;
    expect(logged).toHaveLength(1);
  });
});

describe('reads across shards', () => {
  it('lists every order newest first across shards, page by page, each exactly once', async () => {
    for (let i = 0; i < 30; i++) await createOrder(500 + (i % 9));
    const all = (await Promise.all(shards.map((sql) => sql<{ id: string }[]>`select id from orders.orders`)))
      .flat()
      .map((r) => Number(r.id))
      .sort((a, b) => b - a);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await inject('GET', `/orders?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      const page = res.json() as { items: OrderOut[]; nextCursor: string | null; missingShards: number[] };
      expect(page.missingShards).toEqual([]);
      seen.push(...page.items.map((o) => o.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all);
  });

  it('completes a page one shard dominates, every order whole and as GET /orders/:id answers it', async () => {
    // Ids grow with each shard's own sequence: once one shard has had many more orders than the others, the
    // newest ids are all its own, more than it sends whole with its first answer.
    const customer = 900;
    const shardIds = async () =>
      (
        await Promise.all(
          shards.map(async (sql, shard) =>
            (await sql<{ id: string }[]>`select id from orders.orders order by id desc limit 10`).map((r) => ({
              id: Number(r.id),
              shard,
            })),
          ),
        )
      )
        .flat()
        .sort((a, b) => b.id - a.id)
        .slice(0, 10);
    let newest = await shardIds();
    for (let i = 0; i < 300 && (newest.length < 10 || new Set(newest.map((o) => o.shard)).size > 1); i++) {
      await createOrder(customer, [
        { productId: 7, quantity: 1, price: '1.25' },
        { productId: 8, quantity: 3, price: '0.10' },
      ]);
      newest = await shardIds();
    }
    expect(new Set(newest.map((o) => o.shard)).size).toBe(1);

    const res = await inject('GET', '/orders?limit=10');
    expect(res.statusCode).toBe(200);
    const page = res.json() as { items: OrderOut[]; nextCursor: string | null; missingShards: number[] };
    expect(page.items.map((o) => o.id)).toEqual(newest.map((o) => o.id));
    for (const order of page.items) expect(order).toEqual((await inject('GET', `/orders/${order.id}`)).json());
    expect(page.items[0]!.items).toHaveLength(2);
  });

  it('sums stats over the shards', async () => {
    const stats = (await inject('GET', '/orders/stats')).json();
    const counted = (
      await Promise.all(shards.map((sql) => sql<{ n: number }[]>`select count(*)::int as n from orders.orders`))
    ).reduce((s, [r]) => s + r!.n, 0);
    expect(stats.total).toBe(counted);
    expect(stats.missingShards).toEqual([]);
  });

  it("answers 503 SHARD.UNAVAILABLE naming a late shard, or the other shards' data with consistency=partial", async () => {
    // A shard whose orders table is locked cannot answer within the per-shard deadline.
    const blocker = await shards[1]!.reserve();
    const [{ pid: blockerPid }] = await blocker<[{ pid: number }]>`select pg_backend_pid() as pid`;
    try {
      await blocker`begin`;
      await blocker`lock table orders.orders, orders.status_counts in access exclusive mode`;
      const strict = await inject('GET', '/orders?status=pending');
      expect(strict.statusCode).toBe(503);
      expect(strict.json().code).toBe('SHARD.UNAVAILABLE');
      expect(strict.json().details.shards).toEqual([1]);
      expect(strict.headers['retry-after']).toBeDefined();

      const partial = await inject('GET', '/orders?status=pending&consistency=partial&limit=500');
      expect(partial.statusCode).toBe(200);
      expect(partial.json().missingShards).toEqual([1]);
      const onOthers = (
        await Promise.all(
          [0, 2, 3].map((s) => shards[s]!`select count(*)::int as n from orders.orders where status = 'pending'`),
        )
      ).reduce((a, [r]) => a + r!.n, 0);
      expect(partial.json().items).toHaveLength(onOthers);

      const stats = await inject('GET', '/orders/stats?consistency=partial');
      expect(stats.json().missingShards).toEqual([1]);
      expect((await inject('GET', '/orders/stats')).statusCode).toBe(503);

      // The late shard's statements were cancelled on the server: none still waits for the lock, and no
      // connection of stratum's is left inside a transaction.
      const waiting = (sql: Sql) => sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and pid <> ${blockerPid}
          and (state = 'active' or state like 'idle in transaction%')`;
      await expect.poll(async () => (await waiting(shards[1]!))[0]!.n, { timeout: 2000 }).toBe(0);
    } finally {
      await blocker`rollback`;
      blocker.release();
    }
    expect((await inject('GET', '/orders?status=pending')).statusCode).toBe(200);
  });

  it('rejects a bad consistency value with 400', async () => {
    const res = await inject('GET', '/orders?consistency=eventual');
    expect(res.statusCode).toBe(400);
  });
});

describe('POST /orders/:id/transfer (two-phase commit across shards)', () => {
  it('moves an order and its items to a customer on another shard: both shards change, nothing is left prepared', async () => {
    const { a, b } = await customersOnTwoShards(1000);
    const order = await createOrder(a, [
      { productId: 7, quantity: 3, price: '2.00' },
      { productId: 8, quantity: 1, price: '1.00' },
    ]);
    const res = await inject('POST', `/orders/${order.id}/transfer`, { toCustomerId: b });
    expect(res.statusCode).toBe(200);
    const moved = res.json() as OrderOut;
    expect(moved).toMatchObject({ customerId: b, totalAmount: '7.00', status: 'pending' });
    expect(moved.items.map((i) => [i.productId, i.quantity, i.price])).toEqual([
      [7, 3, '2.00'],
      [8, 1, '1.00'],
    ]);
    expect(await rowsOf(order.id)).toEqual([]);
    expect(await rowsOf(moved.id)).toEqual([{ shard: await shardOfCustomer(b), customer: String(b), items: 2 }]);
    expect(await preparedLeft()).toBe(0);
    const old = await inject('GET', `/orders/${order.id}`);
    expect(old.statusCode).toBe(301);
    expect(old.headers.location).toBe(`/orders/${moved.id}`);
    expect((await db.sql`select count(*)::int as n from sharding.decisions`)[0]!.n).toBe(0);
  });

  it('moves within one shard in one local transaction', async () => {
    const { a, sameAsA } = await customersOnTwoShards(2000);
    const order = await createOrder(a);
    const res = await inject('POST', `/orders/${order.id}/transfer`, { toCustomerId: sameAsA });
    expect(res.statusCode).toBe(200);
    expect(await rowsOf(res.json().id)).toHaveLength(1);
    expect(await rowsOf(order.id)).toEqual([]);
  });

  it('changes neither shard when the target shard fails before it prepares', async () => {
    const { a, b } = await customersOnTwoShards(3000);
    const order = await createOrder(a);
    const target = shards[await shardOfCustomer(b)]!;
    const blocker = await target.reserve();
    try {
      await blocker`begin`;
      await blocker`lock table orders.orders in access exclusive mode`;
      const res = await inject('POST', `/orders/${order.id}/transfer`, { toCustomerId: b });
      expect(res.statusCode).toBe(503);
    } finally {
      await blocker`rollback`;
      blocker.release();
    }
    expect(await rowsOf(order.id)).toEqual([{ shard: await shardOfCustomer(a), customer: String(a), items: 1 }]);
    expect(await preparedLeft()).toBe(0);
  });

  it('answers 404 for an unknown order and 400 for a transfer to its own customer, changing nothing', async () => {
    expect((await inject('POST', '/orders/999999999/transfer', { toCustomerId: 5 })).statusCode).toBe(404);
    const order = await createOrder(4000);
    const same = await inject('POST', `/orders/${order.id}/transfer`, { toCustomerId: 4000 });
    expect(same.statusCode).toBe(400);
    expect((await inject('POST', `/orders/${order.id}/transfer`, { toCustomerId: 0 })).statusCode).toBe(400);
    expect(await rowsOf(order.id)).toHaveLength(1);
  });
});

describe('POST /orders/checkout (saga)', () => {
  async function stock(productId: number): Promise<number[]> {
    return Promise.all(
      shards.map(
        async (sql) =>
          (
            await sql<{ available: number }[]>`select available from orders.inventory where product_id = ${productId}`
          )[0]?.available ?? -1,
      ),
    );
  }
  const charge = async (sagaId: string) =>
    (
      await db.sql<
        { status: string }[]
      >`select status from payments.simulated_charges where idempotency_key = ${sagaId}`
    )[0]?.status;

  beforeAll(async () => {
    expect((await inject('PUT', '/inventory/900', { available: 10 })).statusCode).toBe(204);
    expect((await inject('PUT', '/inventory/901', { available: 1 })).statusCode).toBe(204);
  });

  it('creates the order, reserves stock, charges, and marks it processing', async () => {
    const customer = 5001;
    const res = await inject('POST', '/orders/checkout', {
      customerId: customer,
      items: [{ productId: 900, quantity: 3, price: '5.00' }],
      paymentToken: 'tok_ok',
    });
    expect(res.statusCode).toBe(201);
    const { sagaId, order } = res.json();
    expect(order).toMatchObject({ customerId: customer, status: 'processing', totalAmount: '15.00' });
    expect((await stock(900))[await shardOfCustomer(customer)]).toBe(7);
    expect(await charge(sagaId)).toBe('charged');
    expect((await db.sql`select status from sharding.sagas where id = ${sagaId}`)[0]!.status).toBe('completed');
  });

  it('a declined payment releases the stock and cancels the order, and says which step failed', async () => {
    const customer = 5002;
    const before = (await stock(900))[await shardOfCustomer(customer)];
    const res = await inject('POST', '/orders/checkout', {
      customerId: customer,
      items: [{ productId: 900, quantity: 2, price: '5.00' }],
      paymentToken: 'tok_decline',
    });
    expect(res.statusCode).toBe(402);
    const body = res.json();
    expect(body.code).toBe('PAYMENT.DECLINED');
    expect(body.details).toMatchObject({
      failedStep: 'charge-payment',
      compensated: ['charge-payment', 'reserve-stock', 'create-order'],
    });
    expect((await stock(900))[await shardOfCustomer(customer)]).toBe(before);
    expect((await inject('GET', `/orders/${body.details.orderId}`)).json().status).toBe('cancelled');
    expect(await charge(body.details.sagaId)).toBeUndefined();
  });

  it('too little stock fails at reserve-stock with 409 and cancels the order', async () => {
    const res = await inject('POST', '/orders/checkout', {
      customerId: 5003,
      items: [{ productId: 901, quantity: 2, price: '1.00' }],
      paymentToken: 'tok_ok',
    });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({
      code: 'STOCK.INSUFFICIENT',
      details: { failedStep: 'reserve-stock', productIds: [901] },
    });
    expect((await inject('GET', `/orders/${res.json().details.orderId}`)).json().status).toBe('cancelled');
    expect((await stock(901))[await shardOfCustomer(5003)]).toBe(1);
  });

  it('a payment provider that never answers fails the step at its timeout, and compensates', async () => {
    const res = await inject('POST', '/orders/checkout', {
      customerId: 5004,
      items: [{ productId: 900, quantity: 1, price: '5.00' }],
      paymentToken: 'tok_timeout',
    });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'PAYMENT.UNAVAILABLE', details: { failedStep: 'charge-payment' } });
    expect((await inject('GET', `/orders/${res.json().details.orderId}`)).json().status).toBe('cancelled');
  });

  it('rejects a bad checkout body with 400 and starts no saga', async () => {
    const before = (await db.sql<{ n: number }[]>`select count(*)::int as n from sharding.sagas`)[0]!.n;
    const res = await inject('POST', '/orders/checkout', { customerId: 1, items: [], paymentToken: 'tok_ok' });
    expect(res.statusCode).toBe(400);
    expect((await db.sql<{ n: number }[]>`select count(*)::int as n from sharding.sagas`)[0]!.n).toBe(before);
  });
});
