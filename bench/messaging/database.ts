import postgres from 'postgres';
import { allMigrations } from '../../src/contexts/index.ts';
import { openEmbedded } from '../../src/platform/db/embedded/embedded-server.ts';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createMigrator } from '../../src/platform/migrate/migrator.ts';

/** The benchmark's own database, migrated; dropped again by `close()`. */
export interface MessagingDatabase {
  /** For the report: `embedded, .stratum-bench-messaging` or `DATABASE_URL`. */
  source: string;
  version: string;
  url: string;
  /** Empties every messaging table, so each broker starts from the same state. */
  reset(sql: Sql): Promise<void>;
  close(): Promise<void>;
}

const EMBEDDED_HOME = '.stratum-bench-messaging';
const DATABASE = 'stratum_bench_messaging';

/**
 * The server in DATABASE_URL when set (only the database `stratum_bench_messaging` is touched), else an
 * embedded PostgreSQL under .stratum-bench-messaging/, stopped by `close()` or on Ctrl-C. The database is
 * created fresh and migrated with stratum's own migrations.
 */
export async function openMessagingDatabase(env: Record<string, string | undefined>): Promise<MessagingDatabase> {
  const external = env.DATABASE_URL?.trim();
  const embedded = external ? undefined : await openEmbedded({ home: EMBEDDED_HOME, role: 'serve' });
  const adminUrl = external ?? urlOf(embedded!.target);
  const stopOnSignal = () => {
    void embedded?.release().finally(() => process.exit(130));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [{ server_version: version }] = await admin<[{ server_version: string }]>`show server_version`;
    await admin.unsafe(`drop database if exists ${DATABASE} with (force)`);
    await admin.unsafe(`create database ${DATABASE}`);
    const url = new URL(adminUrl);
    url.pathname = `/${DATABASE}`;
    const migrating = postgres(url.toString(), { max: 1, onnotice: () => {} }) as unknown as Sql;
    try {
      await createMigrator({ sql: migrating, migrations: allMigrations() }).up();
    } finally {
      await migrating.end({ timeout: 5 });
    }
    return {
      source: external ? 'DATABASE_URL' : `embedded, ${EMBEDDED_HOME}`,
      version,
      url: url.toString(),
      async reset(sql) {
        await sql`truncate messaging.outbox, messaging.processed_messages, messaging.log, messaging.positions,
          messaging.consumers, messaging.dead_letters`;
        await sql`vacuum analyze messaging.outbox, messaging.processed_messages, messaging.log, messaging.positions`;
      },
      async close() {
        process.off('SIGINT', stopOnSignal);
        process.off('SIGTERM', stopOnSignal);
        await admin.unsafe(`drop database if exists ${DATABASE} with (force)`).catch(() => {});
        await admin.end({ timeout: 5 });
        await embedded?.release();
      },
    };
  } catch (error) {
    await admin.end({ timeout: 5 });
    await embedded?.release();
    throw error;
  }
}

function urlOf(t: { host: string; port: number; user: string; password?: string; database: string }): string {
  return `postgres://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password ?? '')}@${t.host}:${t.port}/${t.database}`;
}
