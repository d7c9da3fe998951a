import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { shardMigrations } from '../src/app/migrations.ts';
import { bucketOfKey } from '../src/platform/sharding/buckets.ts';
import { createMigrator } from '../src/platform/migrate/migrator.ts';
import { findOrder, listOrders, ordersByIdsQuery, shardPageQuery } from '../src/contexts/orders/orders-repository.ts';
import type { Sql } from '../src/platform/db/connect.ts';

describe('orders migrations on populated data', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('adds notes and splits customer names, and the down migrations restore the data exactly', async () => {
    const all = shardMigrations();
    const upTo = (context: string, version: number) =>
      all.slice(0, all.findIndex((m) => m.context === context && m.version === version) + 1);
    await createMigrator({ sql: db.sql, migrations: upTo('orders', 1) }).up();
    const names = ['Ada Lovelace', 'Grace Brewster Murray Hopper', 'Plato', null, 'Jean-Luc Picard'];
    await db.sql`insert into orders.customers (id, name, email) select i, n, 'c' || i || '@example.test' from unnest(${names}::text[]) with ordinality as t(n, i)`;
    await db.sql`insert into orders.orders (customer_id, status, total_amount) select (i % 5) + 1, 'pending', i from generate_series(1, 50) i`;
    const ordersBefore =
      await db.sql`select id, customer_id, status, total_amount::text from orders.orders order by id`;

    const full = createMigrator({ sql: db.sql, migrations: upTo('orders', 3) });
    await full.up();
    const split = await db.sql`select id, first_name, last_name from orders.customers order by id`;
    expect(split.map((r) => [r.first_name, r.last_name])).toEqual([
      ['Ada', 'Lovelace'],
      ['Grace', 'Brewster Murray Hopper'],
      ['Plato', null],
      [null, null],
      ['Jean-Luc', 'Picard'],
    ]);
    await db.sql`update orders.orders set notes = 'n' || id where id <= 10`;
    expect((await db.sql`select count(notes)::int as n from orders.orders`)[0]!.n).toBe(10);

    await full.down(1); // join the names back
    const joined = await db.sql`select name from orders.customers order by id`;
    expect(joined.map((r) => r.name)).toEqual(names);
    await full.down(1); // drop notes
    const columns =
      await db.sql`select column_name from information_schema.columns where table_schema = 'orders' and table_name = 'orders'`;
    expect(columns.map((c) => c.column_name)).not.toContain('notes');
    expect(await db.sql`select id, customer_id, status, total_amount::text from orders.orders order by id`).toEqual(
      ordersBefore,
    );

    await full.up(); // and forward again
    expect((await db.sql`select first_name from orders.customers where id = 2`)[0]!.first_name).toBe('Grace');
  });
});

describe('the orders queries use their indexes', () => {
  let db: TestDatabase;
  let explained: Sql;
  const plans: unknown[] = [];

  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    await createMigrator({ sql: db.sql, migrations: shardMigrations() }).up();
    await db.sql`insert into shard.owned_buckets (bucket) select b from generate_series(0, 1023) b where b % 2 = 0`;
    await db.sql`insert into orders.orders (id, customer_id, bucket, status, total_amount)
      select i, 1 + (i % 2000), orders.bucket_of(1 + (i % 2000)), (array['pending', 'processing', 'completed', 'cancelled'])[1 + (i % 4)], 10 from generate_series(1, 40000) i`;
    await db.sql`insert into orders.order_items (order_id, product_id, quantity, price)
      select o.id, k, 1, 3.33 from orders.orders o, generate_series(1, 3) k`;
    await db.sql`analyze orders.orders`;
    await db.sql`analyze orders.order_items`;
    // auto_explain sends the plan of every statement the repository runs back to this connection as a notice.
    const pool = postgres(db.url, {
      max: 1,
      onnotice: (notice) => {
        const text = String(notice.message);
        const at = text.indexOf('{');
        if (text.includes('plan:') && at >= 0) plans.push(JSON.parse(text.slice(at)));
      },
    });
    await pool.unsafe(`load 'auto_explain'; set auto_explain.log_min_duration = 0; set auto_explain.log_level = notice;
      set auto_explain.log_format = json; set auto_explain.log_nested_statements = on`);
    explained = pool as unknown as Sql;
  });

  afterAll(async () => {
    await (explained as unknown as postgres.Sql)?.end();
    await db?.drop();
  });

  function scans(plan: unknown): Array<{ type: string; relation?: string }> {
    const out: Array<{ type: string; relation?: string }> = [];
    const walk = (node: Record<string, unknown>) => {
      out.push({ type: node['Node Type'] as string, relation: node['Relation Name'] as string | undefined });
      for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
    };
    walk((plan as { Plan: Record<string, unknown> }).Plan);
    return out;
  }

  async function planOf(run: () => Promise<unknown>) {
    plans.length = 0;
    await run();
    expect(plans.length).toBeGreaterThan(0);
    return plans.flatMap(scans);
  }

  it.each([
    ['list by customer', () => listOrders(explained, { customerId: 77, limit: 50 })],
    ['list by status', () => listOrders(explained, { status: 'processing', limit: 50 })],
    ['keyset page by customer', () => listOrders(explained, { customerId: 77, beforeId: 30000, limit: 5 })],
    ['keyset page by status', () => listOrders(explained, { status: 'cancelled', beforeId: 20000, limit: 50 })],
    ['keyset page, no filter', () => listOrders(explained, { beforeId: 20000, limit: 50 })],
    ['get with items', () => findOrder(explained, 12345)],
    [
      'page by status on a shard, owned buckets only',
      () => listOrders(explained, { status: 'processing', beforeId: 20000, limit: 50, ownedOnly: true }),
    ],
    [
      "a shard's part of a page across shards",
      () =>
        shardPageQuery(explained, { status: 'pending', beforeId: 30000, limit: 50, ownedOnly: true }, 13).then(
          () => undefined,
        ),
    ],
    ['the kept orders of a page', () => ordersByIdsQuery(explained, [100, 200, 300]).then(() => undefined)],
  ] as const)('%s: no sequential scan of orders or order_items', async (_name, run) => {
    const nodes = await planOf(run);
    const seq = nodes.filter((n) => n.type === 'Seq Scan' && (n.relation === 'orders' || n.relation === 'order_items'));
    expect(seq).toEqual([]);
    expect(nodes.some((n) => /Index/.test(n.type))).toBe(true);
  });
});

describe('the bucket of a customer', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    await createMigrator({ sql: db.sql, migrations: shardMigrations() }).up();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('is the same in SQL (orders.bucket_of) and in TypeScript (bucketOfKey)', async () => {
    const keys = [1, 2, 3, 42, 1023, 1024, 65_535, 2_147_483_647, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    const rows = await db.sql<
      { k: string; b: number }[]
    >`select k::text, orders.bucket_of(k) as b from unnest(${keys}::bigint[]) as k`;
    expect(rows.map((r) => r.b)).toEqual(keys.map(bucketOfKey));
  });
});
