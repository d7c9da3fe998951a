import type { Config } from '../config/config.ts';
import { shardMigrations } from '../app/migrations.ts';
import { openDatabase, type Database } from '../app/database.ts';
import { createPool } from '../platform/db/connect.ts';
import type { Migrator } from '../platform/migrate/migrator.ts';
import { createMigrator } from '../platform/migrate/migrator.ts';
import { shardOfRow } from '../platform/sharding/shard-set.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const MIGRATE_USAGE = 'usage: stratum migrate up | down [n] | status';

export const MIGRATE_HELP = `${MIGRATE_USAGE}

  up          apply every pending migration of the main database, then of every orders shard the catalog lists
  down [n]    revert the n most recent migrations of the main database (default 1; the shards are left as they are)
  status      each migration of the main database and of every orders shard, and whether it is applied

With no DATABASE_URL, the embedded PostgreSQL of STRATUM_HOME: the running server's, or one started for the command.`;

/**
 * `stratum migrate up | down [n] | status`: the main database's migrations; `up` and `status` also cover every
 * orders shard the catalog lists (a shard is otherwise migrated when the server starts). `down` reverts the main
 * database only.
 */
export async function runMigrate(config: Config, args: string[], io: Io): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.out(MIGRATE_HELP);
    return 0;
  }
  const [action, countArg] = args;
  if (action !== 'up' && action !== 'down' && action !== 'status') {
    io.err(MIGRATE_USAGE);
    return 2;
  }
  let count = 1;
  if (action === 'down' && countArg !== undefined) {
    if (!/^\d+$/.test(countArg) || Number(countArg) < 1) {
      io.err(`stratum: migrate down takes a positive count, got "${countArg}"`);
      return 2;
    }
    count = Number(countArg);
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  try {
    if (action === 'up') {
      const applied = await database.migrator.up();
      io.out(
        applied.length === 0
          ? 'nothing to apply: the schema is up to date'
          : applied.map((m) => `applied ${m.context}/${m.version} ${m.name}`).join('\n'),
      );
      const failed = await forEachShard(database, io, async (label, migrator) => {
        for (const m of await migrator.up()) io.out(`applied ${m.context}/${m.version} ${m.name} on ${label}`);
      });
      if (failed > 0) return 1;
    } else if (action === 'down') {
      const reverted = await database.migrator.down(count);
      io.out(
        reverted.length === 0
          ? 'nothing to revert'
          : reverted.map((m) => `reverted ${m.context}/${m.version} ${m.name}`).join('\n'),
      );
    } else {
      for (const s of await database.migrator.status()) io.out(statusLine(s));
      const failed = await forEachShard(database, io, async (label, migrator) => {
        io.out(`${label}:`);
        for (const s of await migrator.status()) io.out(`  ${statusLine(s)}`);
      });
      if (failed > 0) return 1;
    }
    return 0;
  } finally {
    await database.close();
  }
}

function statusLine(s: Awaited<ReturnType<Migrator['status']>>[number]): string {
  return `${s.state.padEnd(8)} ${s.context}/${String(s.version).padStart(4, '0')} ${s.name}${s.appliedAt ? `  (${s.appliedAt.toISOString()})` : ''}`;
}

/**
 * Runs `fn` with a migrator on each orders shard the catalog lists; a shard it fails on is named on stderr and
 * the others still run. Returns how many failed.
 */
async function forEachShard(
  database: Database,
  io: Io,
  fn: (label: string, migrator: Migrator) => Promise<void>,
): Promise<number> {
  const [catalog] = await database.sql<{ ok: boolean }[]>`select to_regclass('sharding.shards') is not null as ok`;
  if (!catalog!.ok) return 0;
  let failed = 0;
  const rows = await database.sql<
    { id: number; database: string | null; url: string | null }[]
  >`select id, database, url from sharding.shards order by id`;
  for (const row of rows) {
    const { target, name } = shardOfRow(database.target, row);
    const label = `shard ${row.id} (${name})`;
    const sql = createPool(target, { max: 1, applicationName: database.applicationName, connectTimeoutSeconds: 5 });
    try {
      await fn(label, createMigrator({ sql, migrations: shardMigrations() }));
    } catch (error) {
      failed++;
      io.err(`stratum: ${label}: ${(error as Error).message}`);
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
  return failed;
}
