import type { Sql } from '../../src/platform/db/connect.ts';
import { openMigratedDatabase, type MigratedBenchDatabase } from '../support/database.ts';

/** The benchmark's own database with stratum's migrations applied; dropped again by `close()`. */
export interface CodecsDatabase extends MigratedBenchDatabase {
  /**
   * Gives every run the same outbox: SENT_ROWS rows already sent (what a live outbox keeps for its retention)
   * and no unsent one, analyzed. See SENT_ROWS for why not an empty one.
   */
  reset(sql: Sql): Promise<void>;
}

const DATABASE = 'stratum_bench_codecs';

/**
 * Sent rows each run starts with. An outbox emptied and analyzed instead made the relay's claim (a prepared
 * statement, `limit $1`) go to a generic plan costed for an empty table: a nested loop that runs the
 * `limit ... for update skip locked` subquery again for every outbox row, each run skipping the rows the statement
 * already took, so one claim took every unsent row (24,865 in one publish here; 20,000 in 35 s in an EXPLAIN
 * ANALYZE on PostgreSQL 15) and the relay fell seconds behind. A live outbox holds its retention of sent rows,
 * and with those in its statistics the plan is the index scan of the unsent rows.
 */
const SENT_ROWS = 20_000;

/** The bench database stratum_bench_codecs under .stratum-bench-codecs (see openMigratedDatabase), with its own reset. */
export async function openCodecsDatabase(env: Record<string, string | undefined>): Promise<CodecsDatabase> {
  const database = await openMigratedDatabase(env, '.stratum-bench-codecs', DATABASE);
  return {
    ...database,
    async reset(sql) {
      await sql`truncate messaging.outbox`;
      await sql`
        insert into messaging.outbox (id, type, key, payload, sent_at)
        select gen_random_uuid(), 'bench.sent', 'bench', '{}', now() - interval '1 hour'
        from generate_series(1, ${SENT_ROWS})`;
      await sql`vacuum analyze messaging.outbox`;
    },
  };
}
