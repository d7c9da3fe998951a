import type { Sql } from '../../src/platform/db/connect.ts';
import { openMigratedDatabase, type MigratedBenchDatabase } from '../support/database.ts';

/** The benchmark's own database, migrated; dropped again by `close()`. */
export interface MessagingDatabase extends MigratedBenchDatabase {
  /** Empties every messaging table, so each broker starts from the same state. */
  reset(sql: Sql): Promise<void>;
}

const DATABASE = 'stratum_bench_messaging';

/** The bench database stratum_bench_messaging under .stratum-bench-messaging (see openMigratedDatabase), with its own reset. */
export async function openMessagingDatabase(env: Record<string, string | undefined>): Promise<MessagingDatabase> {
  const database = await openMigratedDatabase(env, '.stratum-bench-messaging', DATABASE);
  return {
    ...database,
    async reset(sql) {
      await sql`truncate messaging.outbox, messaging.processed_messages, messaging.log, messaging.positions,
        messaging.consumers, messaging.dead_letters`;
      await sql`vacuum analyze messaging.outbox, messaging.processed_messages, messaging.log, messaging.positions`;
    },
  };
}
