import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import type { Sql } from '../src/platform/db/connect.ts';

let db: TestDatabase;
let stratum: TestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  stratum = await startTestApp(db);
});

afterAll(async () => {
  await stratum?.close();
  await db?.drop();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const inject = (method: Method, url: string, payload?: unknown, headers?: Record<string, string>) =>
  stratum.app.inject({ method, url, payload: payload as never, headers });

interface OrderOut {
  id: number;
  customerId: number;
  status: string;
  totalAmount: string;
  notes: string | null;
  items: Array<{ id: number; productId: number; quantity: number; price: string }>;
}

async function createOrder(
  customerId: number,
  items = [{ productId: 1, quantity: 2, price: '10.50' }],
  notes?: string,
): Promise<OrderOut> {
  const res = await inject('POST', '/orders', { customerId, items, ...(notes === undefined ? {} : { notes }) });
  expect(res.statusCode).toBe(201);
  return res.json();
}

/** Rows of a query run on every orders shard, concatenated. */
async function onShards<T>(query: (sql: Sql) => Promise<T[]>): Promise<T[]> {
  return (await Promise.all((await db.shards()).map(query))).flat();
}

async function counts() {
  const rows = await onShards(
    (sql) => sql<
      { orders: number; items: number; total: string }[]
    >`select (select count(*)::int from orders.orders) as orders,
    (select count(*)::int from orders.order_items) as items, (select coalesce(sum(total_amount), 0)::text from orders.orders) as total`,
  );
  const cents = rows.reduce((sum, r) => sum + Math.round(Number(r.total) * 100), 0);
  return {
    orders: rows.reduce((s, r) => s + r.orders, 0),
    items: rows.reduce((s, r) => s + r.items, 0),
    total: (cents / 100).toFixed(2),
  };
}

describe('POST /orders and GET /orders/:id', () => {
  it('writes the order and its items, with the total computed by PostgreSQL, money as decimal strings', async () => {
    const order = await createOrder(
      7,
      [
        { productId: 1, quantity: 3, price: '0.10' },
        { productId: 2, quantity: 1, price: '0.20' },
        { productId: 3, quantity: 7, price: '19.99' },
      ],
      'leave at the door',
    );
    expect(order).toMatchObject({
      customerId: 7,
      status: 'pending',
      totalAmount: '140.43',
      notes: 'leave at the door',
    });
    expect(order.items.map((i) => [i.productId, i.quantity, i.price])).toEqual([
      [1, 3, '0.10'],
      [2, 1, '0.20'],
      [3, 7, '19.99'],
    ]);
    const read = await inject('GET', `/orders/${order.id}`);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(order);
  });

  it('writes the order and up to 1,000 items in one statement', async () => {
    const items = Array.from({ length: 1000 }, (_, i) => ({ productId: i + 1, quantity: 1, price: '1.01' }));
    const order = await createOrder(8, items);
    expect(order.items).toHaveLength(1000);
    expect(order.totalAmount).toBe('1010.00');
  });

  it.each([
    [{ customerId: 1, items: [] }, 'items'],
    [
      { customerId: 1, items: Array.from({ length: 1001 }, () => ({ productId: 1, quantity: 1, price: '1' })) },
      'items',
    ],
    [
      {
        customerId: 1,
        items: [
          { productId: 1, quantity: 1, price: '1' },
          { productId: 1, quantity: 0, price: '1' },
        ],
      },
      'items.1.quantity',
    ],
    [{ customerId: 1, items: [{ productId: 1, quantity: 1, price: 1.5 }] }, 'items.0.price'],
    [{ customerId: 1, items: [{ productId: 1, quantity: 1, price: '-1.00' }] }, 'items.0.price'],
    [{ customerId: 1, items: [{ productId: 1, quantity: 1, price: '1.234' }] }, 'items.0.price'],
    [{ customerId: 1, items: [{ productId: 1, quantity: 1, price: '123456789.00' }] }, 'items.0.price'],
    [{ customerId: 1, items: [{ productId: 0, quantity: 1, price: '1' }] }, 'items.0.productId'],
    [{ customerId: 1, items: [{ productId: 1, quantity: 1, price: '1', color: 'red' }] }, 'color'],
    [{ customerId: 0, items: [{ productId: 1, quantity: 1, price: '1' }] }, 'customerId'],
    [{ items: [{ productId: 1, quantity: 1, price: '1' }] }, 'customerId'],
  ])('rejects %j with 400 REQUEST.INVALID naming %s, writing nothing', async (payload, field) => {
    const before = await counts();
    const res = await inject('POST', '/orders', payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('REQUEST.INVALID');
    expect(res.json().detail).toContain(field);
    expect(await counts()).toEqual(before);
  });

  it('answers a missing order with 404 ORDER.NOT_FOUND and a bad id with 400', async () => {
    expect((await inject('GET', '/orders/999999')).json().code).toBe('ORDER.NOT_FOUND');
    expect((await inject('GET', '/orders/abc')).statusCode).toBe(400);
    expect((await inject('DELETE', '/orders/999999')).statusCode).toBe(404);
    expect((await inject('PATCH', '/orders/999999', { status: 'processing' })).statusCode).toBe(404);
  });
});

describe('status changes', () => {
  it('allows pending→processing→completed and pending|processing→cancelled, nothing else', async () => {
    const a = await createOrder(20);
    expect((await inject('PATCH', `/orders/${a.id}`, { status: 'completed' })).json().code).toBe(
      'ORDER.INVALID_TRANSITION',
    );
    expect((await inject('PATCH', `/orders/${a.id}`, { status: 'processing' })).json().status).toBe('processing');
    expect((await inject('PATCH', `/orders/${a.id}`, { status: 'pending' })).statusCode).toBe(409);
    expect((await inject('PATCH', `/orders/${a.id}`, { status: 'completed' })).json().status).toBe('completed');
    expect((await inject('PATCH', `/orders/${a.id}`, { status: 'cancelled' })).statusCode).toBe(409);
    const b = await createOrder(20);
    expect((await inject('PATCH', `/orders/${b.id}`, { status: 'cancelled' })).json().status).toBe('cancelled');
    expect((await inject('PATCH', `/orders/${b.id}`, { status: 'processing' })).statusCode).toBe(409);
    expect((await inject('PATCH', `/orders/${b.id}`, { status: 'shipped' })).statusCode).toBe(400);
  });

  it('lets only one of two concurrent identical transitions win', async () => {
    for (let round = 0; round < 5; round++) {
      const order = await createOrder(21);
      const results = await Promise.all([
        inject('PATCH', `/orders/${order.id}`, { status: 'processing' }),
        inject('PATCH', `/orders/${order.id}`, { status: 'processing' }),
      ]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    }
  });

  it('serves the new status at once after a change (the cached order is dropped after commit)', async () => {
    const order = await createOrder(22);
    expect((await inject('GET', `/orders/${order.id}`)).json().status).toBe('pending');
    await inject('PATCH', `/orders/${order.id}`, { status: 'processing' });
    expect((await inject('GET', `/orders/${order.id}`)).json().status).toBe('processing');
    expect((await inject('DELETE', `/orders/${order.id}`)).statusCode).toBe(204);
    expect((await inject('GET', `/orders/${order.id}`)).statusCode).toBe(404);
    expect(await onShards((sql) => sql`select 1 from orders.order_items where order_id = ${order.id}`)).toEqual([]);
  });
});

describe('GET /orders (keyset pages) and /orders/stats', () => {
  it('walks every page newest first without repeating or skipping an order, while orders are being inserted', async () => {
    const customer = 5000;
    for (let i = 0; i < 23; i++) await createOrder(customer);
    const existing = (
      await onShards(
        (sql) =>
          sql<{ id: number }[]>`select id::int8::float8 as id from orders.orders where customer_id = ${customer}`,
      )
    )
      .map((r) => Number(r.id))
      .sort((a, b) => b - a);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await inject('GET', `/orders?customerId=${customer}&limit=5${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      const page = res.json() as { items: OrderOut[]; nextCursor: string | null };
      seen.push(...page.items.map((o) => o.id));
      await createOrder(customer); // a newer order arrives between pages
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(existing);
  });

  it('filters by status and by customer and status together', async () => {
    const customer = 6000;
    const a = await createOrder(customer);
    await createOrder(customer);
    await inject('PATCH', `/orders/${a.id}`, { status: 'processing' });
    const both = (await inject('GET', `/orders?customerId=${customer}&status=processing`)).json();
    expect(both.items.map((o: OrderOut) => o.id)).toEqual([a.id]);
    const processing = (await inject('GET', '/orders?status=processing&limit=500')).json();
    expect(processing.items.every((o: OrderOut) => o.status === 'processing')).toBe(true);
    expect(processing.items.some((o: OrderOut) => o.id === a.id)).toBe(true);
  });

  it.each([
    '/orders?limit=0',
    '/orders?limit=501',
    '/orders?status=shipped',
    '/orders?cursor=zzz',
    '/orders?customerId=-1',
    '/orders?other=1',
  ])('answers %s with 400', async (url) => {
    const res = await inject('GET', url);
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('REQUEST.INVALID');
  });

  it('counts orders by status', async () => {
    const stats = (await inject('GET', '/orders/stats')).json();
    const rows = await onShards(
      (sql) =>
        sql<{ status: string; n: number }[]>`select status, count(*)::int as n from orders.orders group by status`,
    );
    const byStatus: Record<string, number> = {};
    for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + r.n;
    for (const [status, n] of Object.entries(byStatus)) expect(stats.byStatus[status]).toBe(n);
    expect(stats.total).toBe(rows.reduce((s, r) => s + r.n, 0));
    expect(Object.keys(stats.byStatus).sort()).toEqual(['cancelled', 'completed', 'pending', 'processing']);
  });
});

describe('POST /orders/:id/items/import', () => {
  const csv = (lines: string[]) => lines.join('\n') + '\n';
  const importCsv = (id: number, body: string, query = '') =>
    inject('POST', `/orders/${id}/items/import${query}`, body, { 'content-type': 'text/csv' });

  it('streams items in through COPY, skips the header, and updates the total in the same transaction', async () => {
    const order = await createOrder(30, [{ productId: 1, quantity: 1, price: '1.00' }]);
    const res = await importCsv(
      order.id,
      csv(['product_id,quantity,price', '10,2,3.50', '11,1,0.25', '', '12,4,1.00']),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ imported: 3, rejected: [] });
    const read = (await inject('GET', `/orders/${order.id}`)).json();
    expect(read.items).toHaveLength(4);
    expect(read.totalAmount).toBe('12.25');
  });

  it('rolls back and reports a bad chunk while the good chunks commit', async () => {
    const order = await createOrder(31, [{ productId: 1, quantity: 1, price: '1.00' }]);
    const lines = [
      '1,1,1.00',
      '2,1,1.00',
      '3,abc,1.00',
      '4,1,1.00',
      '5,-2,1.00',
      '6,1,1.00',
      '7,1',
      '8,1,1.00',
      '9,1,1.00,extra',
    ];
    const res = await importCsv(order.id, csv(lines), '?chunkSize=2');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    // chunks: [1,2] ok, [3,4] bad number, [5,6] negative quantity, [7,8] missing column, [9] extra column
    expect(body.imported).toBe(2);
    expect(body.rejected.map((r: { fromLine: number; toLine: number }) => [r.fromLine, r.toLine])).toEqual([
      [3, 4],
      [5, 6],
      [7, 8],
      [9, 9],
    ]);
    expect(body.rejected[0].reason).toMatch(/^line 3: column quantity: invalid input syntax/);
    expect(body.rejected[1].reason).toMatch(/^line 5: .*check constraint/);
    expect(body.rejected[2].reason).toMatch(/^line 7: .*missing data/);
    expect(body.rejected[3].reason).toMatch(/^line 9: .*extra data/);
    const read = (await inject('GET', `/orders/${order.id}`)).json();
    expect(read.items).toHaveLength(3);
    expect(read.totalAmount).toBe('3.00');
  });

  it('imports nothing with atomic=true when one row is bad', async () => {
    const order = await createOrder(32, [{ productId: 1, quantity: 1, price: '1.00' }]);
    const res = await importCsv(order.id, csv(['1,1,1.00', '2,1,1.00', '3,0,1.00']), '?chunkSize=2&atomic=true');
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({
      code: 'IMPORT.REJECTED',
      details: { imported: 0, rejected: [{ fromLine: 3, toLine: 3 }] },
    });
    const read = (await inject('GET', `/orders/${order.id}`)).json();
    expect(read.items).toHaveLength(1);
    expect(read.totalAmount).toBe('1.00');
  });

  it('answers a missing order with 404, a bad chunk size with 400, and JSON with 415', async () => {
    expect((await importCsv(999999, csv(['1,1,1.00']))).statusCode).toBe(404);
    expect((await importCsv(1, csv(['1,1,1.00']), '?chunkSize=0')).statusCode).toBe(400);
    const order = await createOrder(33);
    expect((await inject('POST', `/orders/${order.id}/items/import`, { items: [] })).statusCode).toBe(415);
  });

  it('refuses items for a completed or cancelled order with 409, and a line that never ends with 400', async () => {
    const order = await createOrder(36);
    expect((await importCsv(order.id, 'x'.repeat(70_000))).json()).toMatchObject({
      status: 400,
      code: 'REQUEST.INVALID',
    });
    await inject('PATCH', `/orders/${order.id}`, { status: 'cancelled' });
    const res = await importCsv(order.id, csv(['1,1,1.00']));
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('ORDER.INVALID_TRANSITION');
    expect((await inject('GET', `/orders/${order.id}`)).json().items).toHaveLength(1);
  });

  it('drops the cached order after an import', async () => {
    const order = await createOrder(34, [{ productId: 1, quantity: 1, price: '2.00' }]);
    expect((await inject('GET', `/orders/${order.id}`)).json().items).toHaveLength(1);
    await importCsv(order.id, csv(['2,1,3.00']));
    const read = (await inject('GET', `/orders/${order.id}`)).json();
    expect(read.items).toHaveLength(2);
    expect(read.totalAmount).toBe('5.00');
  });

  it('imports a generated stream of 50,000 rows in chunks', async () => {
    const order = await createOrder(35, [{ productId: 1, quantity: 1, price: '0.00' }]);
    async function* rows() {
      for (let i = 0; i < 50; i++)
        yield Array.from({ length: 1000 }, (_, j) => `${i * 1000 + j + 1},1,0.01`).join('\n') + '\n';
    }
    const res = await stratum.app.inject({
      method: 'POST',
      url: `/orders/${order.id}/items/import?chunkSize=5000`,
      headers: { 'content-type': 'text/csv' },
      payload: Readable.from(rows()),
    });
    expect(res.json()).toEqual({ imported: 50_000, rejected: [] });
    expect((await inject('GET', `/orders/${order.id}`)).json().totalAmount).toBe('500.00');
  });
});
