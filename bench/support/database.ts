import postgres from 'postgres';
import { createMainMigrator } from '../../src/app/migrations.ts';
import { childEnv } from '../../src/config/config.ts';
import type { Sql } from '../../src/platform/db/connect.ts';
import { openEmbedded } from '../../src/platform/db/embedded/embedded-server.ts';

/** The PostgreSQL server a benchmark runs on; every benchmark works in databases of its own there. */
export interface BenchServer {
  /** For the report: `embedded (.stratum-bench)` or `DATABASE_URL`. */
  source: string;
  /** True for the embedded server: the benchmark owns it, roles and all. */
  owned: boolean;
  /** e.g. `18.1` */
  version: string;
  /** Drops `name` if a failed run left it, creates it empty, and returns its URL. */
  createDatabase(name: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  /** Closes the admin connection and stops an embedded server this process started. */
  close(): Promise<void>;
}

/**
 * The server in DATABASE_URL when set (only new databases are touched, never the one the URL names),
 * else an embedded PostgreSQL under `home` (default .stratum-bench/), stopped again by `close()` or on Ctrl-C.
 */
export async function openBenchServer(
  env: Record<string, string | undefined>,
  home = '.stratum-bench',
): Promise<BenchServer> {
  const external = env.DATABASE_URL?.trim();
  const embedded = external ? undefined : await openEmbedded({ home, role: 'serve', env: childEnv(process.env) });
  const adminUrl = external ?? urlOf(embedded!.target);
  const stopOnSignal = () => {
    void embedded?.release().finally(() => process.exit(130));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const [{ server_version: version }] = await admin<[{ server_version: string }]>`show server_version`;
  return {
    source: external ? 'DATABASE_URL' : `embedded, ${home}`,
    owned: !external,
    version,
    async createDatabase(name) {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.unsafe(`create database ${name}`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
    async dropDatabase(name) {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
    },
    async close() {
      process.off('SIGINT', stopOnSignal);
      process.off('SIGTERM', stopOnSignal);
      await admin.end({ timeout: 5 });
      await embedded?.release();
    },
  };
}

function urlOf(t: { host: string; port: number; user: string; password?: string; database: string }): string {
  return `postgres://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password ?? '')}@${t.host}:${t.port}/${t.database}`;
}

/** A benchmark's own database with stratum's migrations applied; dropped again by `close()`. */
export interface MigratedBenchDatabase {
  /** For the report: `embedded, <home>` or `DATABASE_URL`. */
  source: string;
  version: string;
  url: string;
  close(): Promise<void>;
}

/**
 * The bench server (DATABASE_URL, or an embedded PostgreSQL under `home`) with a fresh database `name`,
 * migrated with stratum's own migrations.
 * @example const db = await openMigratedDatabase(process.env, '.stratum-bench-codecs', 'stratum_bench_codecs');
 */
export async function openMigratedDatabase(
  env: Record<string, string | undefined>,
  home: string,
  name: string,
): Promise<MigratedBenchDatabase> {
  const server = await openBenchServer(env, home);
  try {
    const url = await server.createDatabase(name);
    const migrating = postgres(url, { max: 1, onnotice: () => {} }) as unknown as Sql;
    try {
      await createMainMigrator(migrating).up();
    } finally {
      await migrating.end({ timeout: 5 });
    }
    return {
      source: server.source,
      version: server.version,
      url,
      async close() {
        await server.dropDatabase(name).catch(() => {});
        await server.close();
      },
    };
  } catch (error) {
    await server.close();
    throw error;
  }
}
