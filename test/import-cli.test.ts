import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStratum } from './support/child.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp } from './support/app.ts';
import { bucketOfKey } from '../src/platform/sharding/buckets.ts';

// `stratum import order-items` as a user runs it: a child process on a database of its own (DATABASE_URL).
let db: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  // An app start creates and stamps the orders shards the child processes will find.
  await (await startTestApp(db)).close();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-import-cli-'));
  env = { DATABASE_URL: db.url };
});
afterAll(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

/** The shard holding a customer's orders, per the catalog's bucket map. */
async function shardOf(customerId: number) {
  const [row] = await db.sql<
    { shard_id: number }[]
  >`select shard_id from sharding.buckets where bucket = ${bucketOfKey(customerId)}`;
  return (await db.shards())[row!.shard_id]!;
}

async function createOrder(customerId: number): Promise<number> {
  const sql = await shardOf(customerId);
  const bucket = bucketOfKey(customerId);
  const [order] = await sql<{ id: string }[]>`insert into orders.orders (id, customer_id, bucket, status, total_amount)
    values ((nextval('orders.order_seq') * 64 + (select shard_id from shard.info)) * 1024 + ${bucket}, ${customerId}, ${bucket}, 'pending', 0) returning id`;
  return Number(order!.id);
}

function writeCsv(name: string, lines: string[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function orderState(id: number): Promise<{ items: number; total: string }> {
  const [{ customer_id }] = (
    await Promise.all(
      (await db.shards()).map(
        (sql) => sql<{ customer_id: string }[]>`select customer_id from orders.orders where id = ${id}`,
      ),
    )
  ).flat() as [{ customer_id: string }];
  const sql = await shardOf(Number(customer_id));
  const [row] = await sql<{ items: number; total: string }[]>`
    select (select count(*)::int from orders.order_items where order_id = o.id) as items, o.total_amount as total
      from orders.orders o where o.id = ${id}`;
  return row!;
}

const importItems = (args: string[]) => runStratum(['import', 'order-items', ...args], env);

describe('stratum import order-items', () => {
  it('imports a good file, skipping the header, and updates the order total', async () => {
    const id = await createOrder(1);
    const file = writeCsv('good.csv', ['product_id,quantity,price', '10,2,3.50', '11,1,0.25', '12,4,1.00']);
    const result = await importItems(['--order', String(id), '--file', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ imported: 3, rejected: [] });
    expect(await orderState(id)).toEqual({ items: 3, total: '11.25' });
  });

  it('keeps the good chunks, reports the rejected lines and exits 1', async () => {
    const id = await createOrder(2);
    const file = writeCsv('bad-chunk.csv', ['1,1,1.00', '2,1,1.00', '3,abc,1.00', '4,1,1.00', '5,1,2.00']);
    const result = await importItems(['--order', String(id), '--file', file, '--chunk-size', '2']);
    expect(result.code).toBe(1);
    const body = JSON.parse(result.stdout);
    expect(body.imported).toBe(3);
    expect(body.rejected).toHaveLength(1);
    expect(body.rejected[0]).toMatchObject({ fromLine: 3, toLine: 4 });
    expect(body.rejected[0].reason).toMatch(/^line 3: column quantity: invalid input syntax/);
    expect(await orderState(id)).toEqual({ items: 3, total: '4.00' });
  });

  it('imports nothing with --atomic when one row is bad, and says so in one line', async () => {
    const id = await createOrder(3);
    const file = writeCsv('atomic.csv', ['1,1,1.00', '2,1,1.00', '3,-1,1.00']);
    const result = await importItems(['--order', String(id), '--file', file, '--chunk-size', '2', '--atomic']);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^stratum: import failed \(IMPORT\.REJECTED\): nothing was imported: lines 3-3: /);
    expect(JSON.parse(result.stdout)).toMatchObject({ imported: 0, rejected: [{ fromLine: 3, toLine: 3 }] });
    expect(await orderState(id)).toEqual({ items: 0, total: '0.00' });
  });

  it('fails with one line when the order does not exist', async () => {
    const file = writeCsv('missing.csv', ['1,1,1.00']);
    const result = await importItems(['--order', '987654321', '--file', file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toEqual([
      'stratum: import failed (ORDER.NOT_FOUND): order 987654321 does not exist',
    ]);
  });

  it.each([
    ['no --order', ['--file', 'x.csv']],
    ['no --file', ['--order', '1']],
    ['a non-numeric order', ['--order', 'abc', '--file', 'x.csv']],
    ['a chunk size of 0', ['--order', '1', '--file', 'args.csv', '--chunk-size', '0']],
    ['a chunk size past 1000000', ['--order', '1', '--file', 'args.csv', '--chunk-size', '1000001']],
    ['a missing file', ['--order', '1', '--file', 'no-such-file.csv']],
    ['an unknown option', ['--order', '1', '--file', 'args.csv', '--fast']],
  ])('exits 2 with the usage line for %s', async (_case, args) => {
    writeCsv('args.csv', ['1,1,1.00']);
    const absolute = args.map((a) => (a.endsWith('.csv') ? path.join(dir, a) : a));
    const result = await importItems(absolute);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/usage: stratum import order-items --order <id> --file <items.csv>/);
    expect(result.stdout).toBe('');
  });

  it('prints its usage with --help', async () => {
    const result = await importItems(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: stratum import order-items/);
  });
});
