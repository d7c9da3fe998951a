import postgres from 'postgres';
import { createMainMigrator } from '../../src/app/migrations.ts';
import type { Sql } from '../../src/platform/db/connect.ts';
import { openBenchServer } from '../support/database.ts';

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

const DATABASE = 'stratum_bench_messaging';

/**
 * The bench server (DATABASE_URL, or an embedded PostgreSQL under .stratum-bench-messaging/) with a fresh
 * database `stratum_bench_messaging`, migrated with stratum's own migrations.
 */
export async function openMessagingDatabase(env: Record<string, string | undefined>): Promise<MessagingDatabase> {
  const server = await openBenchServer(env, '.stratum-bench-messaging');
  try {
    const url = await server.createDatabase(DATABASE);
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
      async reset(sql) {
        await sql`truncate messaging.outbox, messaging.processed_messages, messaging.log, messaging.positions,
          messaging.consumers, messaging.dead_letters`;
        await sql`vacuum analyze messaging.outbox, messaging.processed_messages, messaging.log, messaging.positions`;
      },
      async close() {
        await server.dropDatabase(DATABASE).catch(() => {});
        await server.close();
      },
    };
  } catch (error) {
    await server.close();
    throw error;
  }
}
