import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { createPool, type Sql } from '../../src/platform/db/connect.ts';

export interface AdminTarget {
  url: string;
  mode: 'embedded' | 'external';
  template?: string;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool on the test database, named so leaks can be found in pg_stat_activity. */
  sql: Sql;
  applicationName: string;
  /** Opens another pool on the same database (a second app instance, a competing migrator). */
  pool(max?: number, applicationName?: string): Sql;
  /** Pools on the orders shards an app over this database created (<name>_orders_<i>), in shard order. */
  shards(): Promise<Sql[]>;
  /** Ends every pool, fails if a connection of this database was left open, and drops the database. */
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * A fresh database for one test file: cloned from the migrated template, or empty with `{ empty: true }`.
 * @example const db = await createTestDatabase(); afterAll(() => db.drop());
 */
export async function createTestDatabase(options: { empty?: boolean; poolMax?: number } = {}): Promise<TestDatabase> {
  const admin = inject('dbAdmin');
  const name = `stratum_t_${randomBytes(5).toString('hex')}`;
  const adminSql = postgres(admin.url, { max: 1, onnotice: () => {} });
  try {
    await adminSql.unsafe(
      options.empty ? `create database ${name}` : `create database ${name} template ${admin.template}`,
    );
  } finally {
    await adminSql.end();
  }
  const url = withDatabase(admin.url, name);
  const applicationName = `test-${name}`;
  const pools: Sql[] = [];
  const pool = (max = 10, app = applicationName) => {
    const p = createPool({ url }, { max, applicationName: app });
    pools.push(p);
    return p;
  };
  const sql = pool(options.poolMax ?? 10);
  let shardPools: Sql[] | undefined;
  return {
    name,
    url,
    sql,
    applicationName,
    pool,
    async shards() {
      if (shardPools) return shardPools;
      const rows = await sql<
        { datname: string }[]
      >`select datname from pg_database where datname like ${`${name}\\_orders\\_%`}
        order by length(datname), datname`;
      shardPools = rows.map((r) => {
        const p = createPool({ url: withDatabase(admin.url, r.datname) }, { max: 2, applicationName });
        pools.push(p);
        return p;
      });
      return shardPools;
    },
    async drop() {
      await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
      const check = postgres(admin.url, { max: 1, onnotice: () => {} });
      try {
        // A closed client's backend may take a moment to leave pg_stat_activity; a leaked one never does.
        let left = 0;
        for (let i = 0; i < 40; i++) {
          left = (
            await check<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = ${name}`
          )[0]!.n;
          if (left === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await check.unsafe(`drop database if exists ${name} with (force)`);
        // The orders shards an app over this database created (<name>_orders_<i>).
        const shards = await check<
          { datname: string }[]
        >`select datname from pg_database where datname like ${`${name}\\_orders\\_%`}`;
        for (const shard of shards) await check.unsafe(`drop database if exists ${shard.datname} with (force)`);
        if (left > 0) throw new Error(`${left} connection(s) to ${name} were left open`);
      } finally {
        await check.end();
      }
    },
  };
}
