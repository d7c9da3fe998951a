import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { ordersBucketMover } from '../../src/contexts/orders/bucket-mover.ts';
import { openOrderShards } from '../../src/contexts/orders/shards.ts';
import { BUCKET_COUNT, bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import { addShard, planRebalance, rebalance, type RebalanceProgress } from '../../src/platform/sharding/rebalance.ts';
import { createDatabaseIfMissing, type ShardSet } from '../../src/platform/sharding/shard-set.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';

// Two shards, a third added, and a rebalance run (as `stratum shards rebalance` runs it, with its own
// connections) while the app serves reads, creations and status changes at a fixed rate.
let db: TestDatabase;
let stratum: TestApp;
let admin: ShardSet;

beforeAll(async () => {
  db = await createTestDatabase();
  stratum = await startTestApp(db, { ordersShardCount: 2 });
  const config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent', ORDERS_SHARD_COUNT: '2' }, process.cwd());
  admin = await openOrderShards(config, {
    catalog: db.sql,
    target: { url: db.url },
    applicationName: db.applicationName,
  });
});

afterAll(async () => {
  await admin?.close();
  await stratum?.close();
  await db?.drop();
});

const inject = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
  stratum.app.inject({ method, url, payload: payload as never });

const NEXT: Record<string, string | undefined> = { pending: 'processing', processing: 'completed' };

describe('online rebalancing', () => {
  it('moves the buckets jumpHash gives the new shard while load runs: no request fails, every order is found once with its last state', async () => {
    const expected = new Map<number, { customerId: number; status: string }>();
    const busy = new Set<number>();
    const failures: string[] = [];
    let requests = 0;
    const record = (what: string, status: number, body: string) => {
      requests++;
      if (status >= 300) failures.push(`${what}: ${status} ${body.slice(0, 200)}`);
    };
    const createOne = async (customerId: number) => {
      const res = await inject('POST', '/orders', {
        customerId,
        items: [{ productId: customerId, quantity: 1, price: '1.00' }],
      });
      record('create', res.statusCode, res.body);
      if (res.statusCode === 201) expected.set(res.json().id, { customerId, status: 'pending' });
    };
    for (let c = 1; c <= 150; c++) await createOne(c);

    // The load: one operation every 10 ms (about 100 per second), chosen in turn.
    let stop = false;
    const inFlight = new Set<Promise<void>>();
    let tick = 0;
    const load = (async () => {
      while (!stop) {
        const n = tick++;
        const ids = [...expected.keys()];
        const op = (async () => {
          if (n % 4 === 0) return createOne(1 + (n % 300));
          const id = ids[(n * 7919) % ids.length]!;
          if (n % 4 === 1 && !busy.has(id) && NEXT[expected.get(id)!.status]) {
            busy.add(id);
            const to = NEXT[expected.get(id)!.status]!;
            const res = await inject('PATCH', `/orders/${id}`, { status: to });
            record('patch', res.statusCode, res.body);
            if (res.statusCode === 200) expected.get(id)!.status = to;
            busy.delete(id);
            return;
          }
          if (n % 4 === 2) {
            const res = await inject('GET', `/orders/${id}`);
            return record('get', res.statusCode, res.body);
          }
          const res = await inject('GET', `/orders?customerId=${expected.get(id)!.customerId}`);
          record('list', res.statusCode, res.body);
        })();
        inFlight.add(op);
        void op.finally(() => inFlight.delete(op));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const progress: RebalanceProgress[] = [];
    let planned;
    let moves;
    try {
      await createDatabaseIfMissing({ url: db.url }, `${db.name}_orders_2`);
      const added = await addShard(admin, { database: `${db.name}_orders_2` });
      expect(added.id).toBe(2);
      planned = planRebalance(admin.assignments(), 3);
      moves = await rebalance({ shards: admin, mover: ordersBucketMover, onProgress: (p) => progress.push(p) });
      await new Promise((r) => setTimeout(r, 1500)); // the app keeps serving on the new map
    } finally {
      stop = true;
      await load;
      await Promise.all(inFlight);
    }

    expect(moves).toEqual(planned);
    expect(moves.every((m) => m.to === 2)).toBe(true);
    expect(moves.length / BUCKET_COUNT).toBeGreaterThan(0.28);
    expect(moves.length / BUCKET_COUNT).toBeLessThan(0.38);
    expect(progress.at(-1)).toMatchObject({ bucketsDone: moves.length, bucketsTotal: moves.length });
    expect(requests).toBeGreaterThan(200);
    expect(failures).toEqual([]);

    // Every order exactly once across the shards, on the shard the map gives its bucket, in its last state.
    const shards = await db.shards();
    expect(shards).toHaveLength(3);
    const rows = (
      await Promise.all(
        shards.map(async (sql, shard) =>
          (
            await sql<{ id: string; status: string; bucket: number }[]>`
      select id::text, status, bucket from orders.orders`
          ).map((r) => ({ shard, ...r })),
        ),
      )
    ).flat();
    const byId = new Map<number, typeof rows>();
    for (const r of rows) byId.set(Number(r.id), [...(byId.get(Number(r.id)) ?? []), r]);
    const map = await db.sql<{ bucket: number; shard_id: number }[]>`select bucket, shard_id from sharding.buckets`;
    const shardOf = new Map(map.map((m) => [m.bucket, m.shard_id]));
    expect(byId.size).toBe(expected.size);
    for (const [id, want] of expected) {
      const found = byId.get(id) ?? [];
      expect(found, `order ${id}`).toHaveLength(1);
      expect(found[0]!.status, `order ${id}`).toBe(want.status);
      expect(found[0]!.shard, `order ${id}`).toBe(shardOf.get(found[0]!.bucket));
    }
    for (const [shard, sql] of shards.entries()) {
      const owned = (await sql<{ bucket: number }[]>`select bucket from shard.owned_buckets order by bucket`).map(
        (r) => r.bucket,
      );
      expect(owned).toEqual(
        map
          .filter((m) => m.shard_id === shard)
          .map((m) => m.bucket)
          .sort((a, b) => a - b),
      );
    }
    const read = await Promise.all([...expected.keys()].slice(0, 50).map((id) => inject('GET', `/orders/${id}`)));
    expect(read.map((r) => `${r.statusCode} ${r.statusCode === 200 ? '' : r.body}`)).toEqual(read.map(() => '200 '));
    // A second run has nothing to move.
    expect(await rebalance({ shards: admin, mover: ordersBucketMover })).toEqual([]);
  }, 180_000);

  it('copies the delta exactly: changed, new and deleted orders since the snapshot', async () => {
    const [source, target] = [admin.byId(0), admin.byId(1)];
    // A customer whose bucket shard 0 owns, with a few orders.
    const owned = (await source.sql<{ bucket: number }[]>`select bucket from shard.owned_buckets order by bucket`).map(
      (r) => r.bucket,
    );
    let customer = 90_000;
    while (!owned.includes(bucketOfKey(customer))) customer++;
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await inject('POST', '/orders', {
        customerId: customer,
        items: [{ productId: 1, quantity: 1, price: '1.00' }],
      });
      ids.push(res.json().id);
    }
    const bucket = (await source.sql<{ bucket: number }[]>`select bucket from orders.orders where id = ${ids[0]!}`)[0]!
      .bucket;
    const state = (sql: typeof source.sql) => sql<{ id: string; status: string; items: number }[]>`
      select id::text, status, (select count(*)::int from orders.order_items i where i.order_id = o.id) as items from orders.orders o where bucket = ${bucket} order by id`;

    let snapshot = '';
    await target.sql.begin(async (into) => {
      await source.sql.begin('isolation level repeatable read read only', async (from) => {
        snapshot = (await from<{ s: string }[]>`select pg_current_snapshot()::text as s`)[0]!.s;
        await ordersBucketMover.copyAll(from, into, [bucket]);
      });
    });
    expect(await state(target.sql)).toEqual(await state(source.sql));
    expect((await inject('PATCH', `/orders/${ids[0]}`, { status: 'processing' })).statusCode).toBe(200);
    expect((await stratum.app.inject({ method: 'DELETE', url: `/orders/${ids[1]}` })).statusCode).toBe(204);
    expect(
      (
        await inject('POST', '/orders', {
          customerId: customer,
          items: [
            { productId: 2, quantity: 1, price: '1.00' },
            { productId: 3, quantity: 1, price: '1.00' },
          ],
        })
      ).statusCode,
    ).toBe(201);
    expect(await state(target.sql)).not.toEqual(await state(source.sql));

    await target.sql.begin(async (into) => {
      await source.sql.begin(async (from) => {
        await ordersBucketMover.copyDelta(from, into, [bucket], snapshot);
      });
    });
    expect(await state(target.sql)).toEqual(await state(source.sql));
    await target.sql.begin((tx) => ordersBucketMover.clear(tx, [bucket]));
  });
});
