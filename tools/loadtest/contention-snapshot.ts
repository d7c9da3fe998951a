import postgres from 'postgres';
import type { ConnectTarget } from '../../src/platform/db/connect.ts';
import { shardOfRow } from '../../src/platform/sharding/shard-set.ts';
import type { ContentionSnapshot, SettleCounts } from './contention-records.ts';

type Client = postgres.Sql<Record<string, never>>;

/** The catalog and every shard of the server under load, one connection each, outside the server's pools. */
export interface ContentionDatabases {
  catalog: Client;
  shards: { id: number; sql: Client }[];
  shardOfBucket: number[];
  close(): Promise<void>;
}

const GID_SEPARATOR = ':';

function open(target: ConnectTarget): Client {
  const options = {
    max: 1,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 30,
    connection: { application_name: 'stratum-loadtest-contention' },
  };
  if ('url' in target)
    return postgres(target.url, {
      ...options,
      ...(target.user ? { username: target.user } : {}),
      ...(target.password ? { password: target.password } : {}),
    });
  return postgres({
    ...options,
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
  });
}

/**
 * Opens the catalog at `databaseUrl` and every shard it lists, and reads the bucket map.
 * @example const dbs = await openContentionDatabases('postgres://postgres@127.0.0.1:5432/stratum'); ... await dbs.close();
 */
export async function openContentionDatabases(databaseUrl: string): Promise<ContentionDatabases> {
  const catalog = open({ url: databaseUrl });
  const shards: { id: number; sql: Client }[] = [];
  const close = async () => {
    await Promise.all([catalog, ...shards.map((s) => s.sql)].map((sql) => sql.end({ timeout: 5 })));
  };
  try {
    const rows = await catalog<
      { id: number; database: string | null; url: string | null }[]
    >`select id, database, url from sharding.shards order by id`;
    for (const row of rows) shards.push({ id: row.id, sql: open(shardOfRow({ url: databaseUrl }, row).target) });
    const buckets = await catalog<
      { bucket: number; shard_id: number }[]
    >`select bucket, shard_id from sharding.buckets order by bucket`;
    const shardOfBucket: number[] = [];
    for (const b of buckets) shardOfBucket[b.bucket] = b.shard_id;
    if (shards.length === 0 || buckets.length === 0)
      throw new Error(
        `${databaseUrl.replace(/\/\/[^@]*@/, '//')} has no shard catalog yet: start the server on it first`,
      );
    return { catalog, shards, shardOfBucket, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function preparedGids(sql: Client): Promise<string[]> {
  const rows = await sql<{ gid: string }[]>`select gid from pg_prepared_xacts where database = current_database()`;
  return rows.map((r) => r.gid);
}

async function unfinishedSagaCount(catalog: Client): Promise<number> {
  const [row] = await catalog<
    { n: number }[]
  >`select count(*)::int as n from sharding.sagas where status in ('running', 'compensating')`;
  return row!.n;
}

async function decisionGids(catalog: Client): Promise<string[]> {
  return (await catalog<{ gid: string }[]>`select gid from sharding.decisions`).map((r) => r.gid);
}

/** What must be zero once the load is over: prepared transactions, unfinished sagas, decisions left without branches. */
export async function readSettleCounts(dbs: ContentionDatabases): Promise<SettleCounts> {
  const prepared: Record<number, number> = {};
  const branches = new Set<string>();
  for (const shard of dbs.shards) {
    const gids = await preparedGids(shard.sql);
    prepared[shard.id] = gids.length;
    // A branch is named <decision gid>:<shard id>.
    for (const gid of gids) branches.add(gid.slice(0, gid.lastIndexOf(GID_SEPARATOR)));
  }
  const decisions = await decisionGids(dbs.catalog);
  return {
    prepared,
    unfinishedSagas: await unfinishedSagaCount(dbs.catalog),
    decisionsWithoutBranches: decisions.filter((gid) => !branches.has(gid)).length,
  };
}

async function ordersOfCustomers(sql: Client, customers: readonly number[]) {
  return sql<
    {
      id: string;
      customer_id: string;
      status: string;
      notes: string | null;
      saga_id: string | null;
      items: number;
      total_matches: boolean;
    }[]
  >`
    select o.id::text, o.customer_id::text, o.status, o.notes, o.saga_id::text,
           (select count(*)::int from orders.order_items i where i.order_id = o.id) as items,
           o.total_amount = coalesce((select sum(i.quantity * i.price) from orders.order_items i where i.order_id = o.id), 0) as total_matches
    from orders.orders o where o.customer_id = any(${customers as number[]}::bigint[])`;
}

async function itemsOfOrders(sql: Client, ids: readonly string[]) {
  return sql<{ order_id: string; items: number }[]>`
    select order_id::text, count(*)::int as items from orders.order_items where order_id = any(${ids as string[]}::bigint[]) group by order_id`;
}

async function stockOfProducts(sql: Client, products: readonly number[]) {
  return sql<{ product_id: string; available: number; reserved: number }[]>`
    select i.product_id::text, i.available,
           coalesce((select sum(r.quantity)::int from orders.stock_reservations r where r.product_id = i.product_id), 0) as reserved
    from orders.inventory i where i.product_id = any(${products as number[]}::bigint[])`;
}

async function sagasWithReservations(sql: Client, products: readonly number[]) {
  return sql<
    { saga_id: string }[]
  >`select distinct saga_id::text from orders.stock_reservations where product_id = any(${products as number[]}::bigint[])`;
}

async function checkoutSagasOf(catalog: Client, customers: readonly number[]) {
  return catalog<{ id: string; status: string }[]>`
    select id::text, status from sharding.sagas
    where kind = 'orders.checkout' and (state->>'customerId')::bigint = any(${customers as number[]}::bigint[])`;
}

async function chargesOf(catalog: Client, keys: readonly string[]) {
  return catalog<{ key: string; status: string }[]>`
    select idempotency_key as key, status from payments.simulated_charges where idempotency_key = any(${keys as string[]}::text[])`;
}

/**
 * Reads what the run's customers, products and checkouts left on every shard and in the catalog. `orderIds`
 * are ids the run saw besides those still on a shard (moved ones): items naming them anywhere are reported.
 */
export async function readSnapshot(
  dbs: ContentionDatabases,
  run: { customers: readonly number[]; products: readonly number[]; orderIds: readonly string[] },
): Promise<ContentionSnapshot> {
  const snapshot: ContentionSnapshot = {
    shardOfBucket: dbs.shardOfBucket,
    shardIds: dbs.shards.map((s) => s.id),
    orders: [],
    items: [],
    stock: [],
    reservedSagas: [],
    sagas: [],
    charges: [],
  };
  for (const shard of dbs.shards) {
    for (const r of await ordersOfCustomers(shard.sql, run.customers)) {
      snapshot.orders.push({
        shardId: shard.id,
        id: r.id,
        customerId: Number(r.customer_id),
        status: r.status,
        notes: r.notes,
        sagaId: r.saga_id,
        items: r.items,
        totalMatches: r.total_matches,
      });
    }
    for (const r of await stockOfProducts(shard.sql, run.products))
      snapshot.stock.push({
        shardId: shard.id,
        productId: Number(r.product_id),
        available: r.available,
        reserved: r.reserved,
      });
    for (const r of await sagasWithReservations(shard.sql, run.products)) snapshot.reservedSagas.push(r.saga_id);
  }
  const ids = [...new Set([...run.orderIds, ...snapshot.orders.map((o) => o.id)])];
  for (const shard of dbs.shards) {
    for (const r of await itemsOfOrders(shard.sql, ids))
      snapshot.items.push({ shardId: shard.id, orderId: r.order_id, items: r.items });
  }
  snapshot.sagas = await checkoutSagasOf(dbs.catalog, run.customers);
  snapshot.charges = await chargesOf(
    dbs.catalog,
    snapshot.sagas.map((s) => s.id),
  );
  return snapshot;
}
