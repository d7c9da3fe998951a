import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';

// Every orders answer is JSON written by the service from its response schema: no PostgreSQL json text (with
// its `"id" : 1` spacing) passed through, exactly the fields the schema names, and /docs/json lists them.
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

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT';
interface Answer {
  status: number;
  body: string;
  contentType: string;
  json: unknown;
}

async function call(method: Method, url: string, payload?: unknown, headers?: Record<string, string>): Promise<Answer> {
  const res = await stratum.app.inject({ method, url, payload: payload as never, headers });
  return {
    status: res.statusCode,
    body: res.body,
    contentType: String(res.headers['content-type']),
    json: res.body === '' ? undefined : JSON.parse(res.body),
  };
}

const ORDER_FIELDS = ['id', 'customerId', 'status', 'totalAmount', 'notes', 'createdAt', 'updatedAt', 'items'];
const ITEM_FIELDS = ['id', 'productId', 'quantity', 'price'];

/** The answer is compact JSON as JSON.stringify writes it: no PostgreSQL spacing, nothing but the value. */
function expectCleanJson(answer: Answer, status: number): void {
  expect(answer.status, answer.body).toBe(status);
  expect(answer.contentType).toMatch(/^application\/(problem\+)?json/);
  expect(answer.body).toBe(JSON.stringify(JSON.parse(answer.body)));
  expect(answer.body).not.toMatch(/" : /);
}

/** An order in exactly its schema's fields, with the value types of the API: ids numbers, money decimal strings. */
function expectOrder(value: unknown): void {
  const order = value as Record<string, unknown>;
  expect(Object.keys(order)).toEqual(ORDER_FIELDS);
  expect(Number.isSafeInteger(order.id)).toBe(true);
  expect(Number.isSafeInteger(order.customerId)).toBe(true);
  expect(order.status).toMatch(/^(pending|processing|completed|cancelled)$/);
  expect(order.totalAmount).toMatch(/^[0-9]+\.[0-9]{2}$/);
  expect(order.notes === null || typeof order.notes === 'string').toBe(true);
  for (const at of [order.createdAt, order.updatedAt]) expect(new Date(at as string).toISOString()).toBe(at);
  for (const item of order.items as Array<Record<string, unknown>>) {
    expect(Object.keys(item)).toEqual(ITEM_FIELDS);
    expect([item.id, item.productId, item.quantity].every(Number.isSafeInteger)).toBe(true);
    expect(item.price).toMatch(/^[0-9]+\.[0-9]{2}$/);
  }
}

async function createOrder(customerId: number, notes?: string): Promise<{ id: number }> {
  const answer = await call('POST', '/orders', {
    customerId,
    items: [
      { productId: 1, quantity: 2, price: '10.5' },
      { productId: 2, quantity: 1, price: '1.25' },
    ],
    notes,
  });
  expectCleanJson(answer, 201);
  return answer.json as { id: number };
}

describe("orders answers are clean JSON in their schema's fields", () => {
  it('POST /orders, with and without Idempotency-Key (and its replay)', async () => {
    const plain = await call('POST', '/orders', {
      customerId: 101,
      items: [{ productId: 1, quantity: 2, price: '10.5' }],
    });
    expectCleanJson(plain, 201);
    expectOrder(plain.json);
    expect(plain.json).toMatchObject({
      customerId: 101,
      status: 'pending',
      totalAmount: '21.00',
      notes: null,
      items: [{ productId: 1, quantity: 2, price: '10.50' }],
    });

    const payload = { customerId: 102, items: [{ productId: 3, quantity: 1, price: '0.1' }], notes: 'ring twice' };
    const first = await call('POST', '/orders', payload, { 'idempotency-key': 'json-test-1' });
    const replay = await call('POST', '/orders', payload, { 'idempotency-key': 'json-test-1' });
    expectCleanJson(first, 201);
    expectCleanJson(replay, 201);
    expectOrder(replay.json);
    expect(replay.body).toBe(first.body);
  });

  it('GET /orders/:id, and the 301 of an order transferred away', async () => {
    const { id } = await createOrder(103, 'a note');
    const read = await call('GET', `/orders/${id}`);
    expectCleanJson(read, 200);
    expectOrder(read.json);
    expect(read.json).toMatchObject({ id, customerId: 103, totalAmount: '22.25', notes: 'a note' });
    // A second read comes from the cache: the same text.
    expect((await call('GET', `/orders/${id}`)).body).toBe(read.body);

    const transferred = await call('POST', `/orders/${id}/transfer`, { toCustomerId: 104 });
    expectCleanJson(transferred, 200);
    expectOrder(transferred.json);
    const newId = (transferred.json as { id: number }).id;
    expect(transferred.json).toMatchObject({ customerId: 104, totalAmount: '22.25', notes: 'a note' });

    const moved = await call('GET', `/orders/${id}`);
    expectCleanJson(moved, 301);
    expect(Object.keys(moved.json as object)).toEqual(['type', 'title', 'status', 'code', 'detail', 'movedTo']);
    expect(moved.json).toMatchObject({ status: 301, code: 'ORDER.MOVED', movedTo: newId });
  });

  it('PATCH /orders/:id', async () => {
    const { id } = await createOrder(105);
    const patched = await call('PATCH', `/orders/${id}`, { status: 'processing' });
    expectCleanJson(patched, 200);
    expectOrder(patched.json);
    expect(patched.json).toMatchObject({ id, status: 'processing' });
  });

  it("GET /orders: a customer's pages, pages across shards, and every order as GET /orders/:id answers it", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await createOrder(106, i % 2 ? (null as never) : `n${i}`)).id);
    const page = await call('GET', '/orders?customerId=106&limit=3');
    expectCleanJson(page, 200);
    const body = page.json as { items: unknown[]; nextCursor: string | null; missingShards: number[] };
    expect(Object.keys(body)).toEqual(['items', 'nextCursor', 'missingShards']);
    expect(body.items).toHaveLength(3);
    body.items.forEach(expectOrder);
    expect(typeof body.nextCursor).toBe('string');
    expect(body.missingShards).toEqual([]);
    const last = await call('GET', `/orders?customerId=106&limit=3&cursor=${body.nextCursor}`);
    expectCleanJson(last, 200);
    expect(last.json).toMatchObject({ nextCursor: null });
    const listed = [...body.items, ...(last.json as { items: unknown[] }).items];
    expect(listed.map((o) => (o as { id: number }).id)).toEqual([...ids].reverse());
    for (const order of listed)
      expect((await call('GET', `/orders/${(order as { id: number }).id}`)).json).toEqual(order);

    // Across shards: few orders sent whole per shard (limit 40 over 4 shards), the rest fetched by id.
    for (let customer = 200; customer < 240; customer++) await createOrder(customer);
    for (const url of [
      '/orders?limit=40',
      '/orders?status=pending&limit=40&consistency=partial',
      '/orders?limit=500',
    ]) {
      const across = await call('GET', url);
      expectCleanJson(across, 200);
      const items = (across.json as { items: unknown[] }).items;
      expect(items.length).toBeGreaterThanOrEqual(40);
      items.forEach(expectOrder);
    }
  });

  it('GET /orders/stats', async () => {
    const stats = await call('GET', '/orders/stats');
    expectCleanJson(stats, 200);
    expect(Object.keys(stats.json as object)).toEqual(['byStatus', 'total', 'missingShards']);
    expect(Object.keys((stats.json as { byStatus: object }).byStatus)).toEqual([
      'pending',
      'processing',
      'completed',
      'cancelled',
    ]);
  });

  it('POST /orders/:id/items/import, with rejected chunks', async () => {
    const { id } = await createOrder(107);
    const imported = await call('POST', `/orders/${id}/items/import?chunkSize=1`, '5,1,1.00\n6,x,1.00\n', {
      'content-type': 'text/csv',
    });
    expectCleanJson(imported, 200);
    expect(Object.keys(imported.json as object)).toEqual(['imported', 'rejected']);
    const rejected = (imported.json as { rejected: object[] }).rejected;
    expect(rejected).toHaveLength(1);
    expect(Object.keys(rejected[0]!)).toEqual(['fromLine', 'toLine', 'reason']);
    const read = await call('GET', `/orders/${id}`);
    expectOrder(read.json);
    expect(read.json).toMatchObject({ totalAmount: '23.25' });
  });

  it('POST /orders/checkout and GET /orders/checkout/:sagaId', async () => {
    expect((await call('PUT', '/inventory/77', { available: 10 })).status).toBe(204);
    const checkout = await call('POST', '/orders/checkout', {
      customerId: 108,
      items: [{ productId: 77, quantity: 2, price: '3.5' }],
      paymentToken: 'tok_ok',
    });
    expectCleanJson(checkout, 201);
    const { sagaId, order } = checkout.json as { sagaId: string; order: unknown };
    expect(Object.keys(checkout.json as object)).toEqual(['sagaId', 'order']);
    expectOrder(order);
    expect(order).toMatchObject({ status: 'processing', totalAmount: '7.00' });

    const status = await call('GET', `/orders/checkout/${sagaId}`);
    expectCleanJson(status, 200);
    expect(status.json).toEqual({
      sagaId,
      status: 'completed',
      orderId: (order as { id: number }).id,
      failedStep: null,
    });
  });
});

describe('the OpenAPI document', () => {
  interface SchemaNode {
    type?: string;
    properties?: Record<string, SchemaNode>;
    items?: SchemaNode;
    additionalProperties?: boolean;
  }
  let paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: SchemaNode }> }> }>
  >;

  beforeAll(async () => {
    const res = await stratum.app.inject({ url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    paths = res.json().paths;
  });

  const answer = (path: string, method: string, status: string) => {
    const content = paths[path]?.[method]?.responses[status]?.content;
    expect(content, `${method} ${path} ${status}`).toBeDefined();
    return Object.values(content!)[0]!.schema;
  };

  /** The order's fields, no others, and its items' fields. */
  function expectOrderSchema(schema: SchemaNode): void {
    expect(Object.keys(schema.properties ?? {})).toEqual(ORDER_FIELDS);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties!.id!.type).toBe('integer');
    expect(schema.properties!.totalAmount!.type).toBe('string');
    const item = schema.properties!.items!.items!;
    expect(Object.keys(item.properties ?? {})).toEqual(ITEM_FIELDS);
    expect(item.additionalProperties).toBe(false);
  }

  it('lists the fields of the order answer on every route that answers an order', () => {
    expectOrderSchema(answer('/orders', 'post', '201'));
    expectOrderSchema(answer('/orders/{id}', 'get', '200'));
    expectOrderSchema(answer('/orders/{id}', 'patch', '200'));
    expectOrderSchema(answer('/orders/{id}/transfer', 'post', '200'));
    const page = answer('/orders', 'get', '200');
    expect(Object.keys(page.properties ?? {})).toEqual(['items', 'nextCursor', 'missingShards']);
    expectOrderSchema(page.properties!.items!.items!);
    const checkout = answer('/orders/checkout', 'post', '201');
    expect(Object.keys(checkout.properties ?? {})).toEqual(['sagaId', 'order']);
    expectOrderSchema(checkout.properties!.order!);
  });

  it('lists the fields of the other orders answers, closed to others', () => {
    const cases: Array<[string, string, string, string[]]> = [
      ['/orders/stats', 'get', '200', ['byStatus', 'total', 'missingShards']],
      ['/orders/{id}/items/import', 'post', '200', ['imported', 'rejected']],
      ['/orders/checkout/{sagaId}', 'get', '200', ['sagaId', 'status', 'orderId', 'failedStep']],
      ['/orders/{id}', 'get', '301', ['type', 'title', 'status', 'code', 'detail', 'movedTo']],
    ];
    for (const [path, method, status, fields] of cases) {
      const schema = answer(path, method, status);
      expect(Object.keys(schema.properties ?? {}), `${method} ${path}`).toEqual(fields);
      expect(schema.additionalProperties, `${method} ${path}`).toBe(false);
    }
    expect(Object.keys(answer('/orders/stats', 'get', '200').properties!.byStatus!.properties ?? {})).toEqual([
      'pending',
      'processing',
      'completed',
      'cancelled',
    ]);
  });
});
