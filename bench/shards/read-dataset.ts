import { performance } from 'node:perf_hooks';
import { loadConfig } from '../../src/config/config.ts';
import { createMainMigrator } from '../../src/app/migrations.ts';
import { openOrderShards } from '../../src/contexts/orders/shards.ts';
import { createPool, type ConnectTarget, type Sql } from '../../src/platform/db/connect.ts';
import type { ShardSet } from '../../src/platform/sharding/shard-set.ts';
import type { BenchServer } from '../support/database.ts';
import { databaseUrl } from './database-url.ts';
import { checkShardOrders, generateShardOrders, type GeneratedShard } from './generate-orders.ts';

/** The read data set: a catalog database and its 4 shard databases on the bench server, kept between runs. */
export interface ReadDataset {
  /** The catalog (stratum's main database); its shards are `<name>_orders_<i>`. */
  name: string;
  url: string;
  ordersPerShard: number;
  /** The shards as stratum opens them (openOrderShards), for the direct queries. */
  shards: ShardSet;
  /** How the data set was built in this run; undefined when an earlier run's was reused. */
  generated: { seconds: number; shards: GeneratedShard[] } | undefined;
  close(): Promise<void>;
}

export const READ_SHARD_COUNT = 4;
/** Orders per customer, on average. */
const ORDERS_PER_CUSTOMER = 10;

/**
 * Opens the read data set of this size, building it first unless a complete one is there (the catalog
 * database's comment says so; `regenerate` builds it anyway). Either way it is checked before use: each shard
 * owns the buckets the catalog maps to it, and holds exactly its orders, all in those buckets.
 * @example const dataset = await openReadDataset(server, someUrlOnTheServer, { ordersPerShard: 250_000, regenerate: false }, progress);
 */
export async function openReadDataset(
  server: BenchServer,
  urlOnServer: string,
  options: { ordersPerShard: number; regenerate: boolean },
  progress: (line: string) => void,
): Promise<ReadDataset> {
  const name = `stratum_bench_shards_read_${options.ordersPerShard}`;
  const url = databaseUrl(urlOnServer, name);
  const complete = `stratum bench shards: ${READ_SHARD_COUNT} shards of ${options.ordersPerShard} orders, complete`;
  const admin = createPool({ url: urlOnServer }, { max: 1, applicationName: 'stratum-bench-shards' });
  let catalog: Sql | undefined;
  let shards: ShardSet | undefined;
  try {
    const [found] = await admin<
      { note: string | null }[]
    >`select shobj_description(oid, 'pg_database') as note from pg_database where datname = ${name}`;
    const reuse = !options.regenerate && found?.note === complete;
    if (!reuse) {
      progress(
        `read data set ${name}: ${found ? 'incomplete or --regenerate, building it again' : 'not there yet, building it'}`,
      );
      for (let i = 0; i < READ_SHARD_COUNT; i++) await server.dropDatabase(`${name}_orders_${i}`);
      await server.createDatabase(name);
    } else {
      progress(`read data set ${name}: reusing it`);
    }
    catalog = createPool({ url }, { max: 2, applicationName: 'stratum-bench-shards', idleTimeoutSeconds: 3600 });
    await createMainMigrator(catalog).up();
    const config = loadConfig({ DATABASE_URL: url, ORDERS_SHARD_COUNT: String(READ_SHARD_COUNT) }, process.cwd());
    shards = await openOrderShards(config, { catalog, target: { url }, applicationName: 'stratum-bench-shards' });
    await checkOwnership(shards);

    let generated: ReadDataset['generated'];
    if (!reuse) {
      const started = performance.now();
      const customerIds = Math.max(1000, Math.round((READ_SHARD_COUNT * options.ordersPerShard) / ORDERS_PER_CUSTOMER));
      progress(
        `generating ${options.ordersPerShard.toLocaleString('en-US')} orders on each of ${READ_SHARD_COUNT} shards (customer ids 1..${customerIds.toLocaleString('en-US')})`,
      );
      const built = await Promise.all(
        shards.all().map((shard) =>
          onOwnConnection(shard.target, async (sql) => {
            const result = await generateShardOrders(sql, shard.id, options.ordersPerShard, customerIds);
            progress(
              `shard ${shard.id}: ${result.orders.toLocaleString('en-US')} orders, ${result.items.toLocaleString('en-US')} items, ${result.customers.toLocaleString('en-US')} customers`,
            );
            return result;
          }),
        ),
      );
      generated = { seconds: (performance.now() - started) / 1000, shards: built };
    }
    progress('checking the data set');
    await Promise.all(
      shards
        .all()
        .map((shard) =>
          onOwnConnection(shard.target, (sql) => checkShardOrders(sql, shard.id, options.ordersPerShard)),
        ),
    );
    if (!reuse) await admin.unsafe(`comment on database ${name} is '${complete}'`);

    const [openShards, openCatalog] = [shards, catalog];
    return {
      name,
      url,
      ordersPerShard: options.ordersPerShard,
      shards: openShards,
      generated,
      async close() {
        await openShards.close();
        await openCatalog.end({ timeout: 5 });
      },
    };
  } catch (error) {
    await shards?.close(0);
    await catalog?.end({ timeout: 1 });
    throw error;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Every shard owns exactly the buckets the catalog's map gives it (what routing and the generated customers rely on). */
async function checkOwnership(shards: ShardSet): Promise<void> {
  const map = shards.assignments();
  if (shards.all().length !== READ_SHARD_COUNT)
    throw new Error(`the catalog lists ${shards.all().length} shards, not ${READ_SHARD_COUNT}`);
  for (const shard of shards.all()) {
    const owned = (await shard.sql<{ bucket: number }[]>`select bucket from shard.owned_buckets order by bucket`).map(
      (r) => r.bucket,
    );
    const expected = map.flatMap((s, bucket) => (s === shard.id ? [bucket] : []));
    if (owned.join() !== expected.join())
      throw new Error(
        `shard ${shard.id} owns ${owned.length} buckets, the catalog maps ${expected.length} to it, and they differ`,
      );
  }
}

/** A connection of its own, without stratum's statement timeout: generating and checking take longer. */
async function onOwnConnection<T>(target: ConnectTarget, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = createPool(target, {
    max: 1,
    applicationName: 'stratum-bench-shards-generate',
    idleTimeoutSeconds: 3600,
  });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
