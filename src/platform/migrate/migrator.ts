import { AppError } from '../errors/app-error.ts';
import type { Sql, TxSql } from '../db/connect.ts';
import { sqlState } from '../db/pg-errors.ts';
import type { Migration } from './migration.ts';

export type MigrationState = 'applied' | 'pending' | 'changed' | 'unknown';

export interface MigrationStatus {
  context: string;
  version: number;
  name: string;
  state: MigrationState;
  appliedAt?: Date;
}

export interface MigratorOptions {
  sql: Sql;
  /** Every migration the code knows, in the order they apply (contexts in order, versions ascending). */
  migrations: readonly Migration[];
  /** How long to wait for another process's migration run before giving up. */
  lockTimeoutMs?: number;
  log?: (line: string) => void;
  /**
   * Runs at the end of every `up`, in its transaction, after the pending migrations (or none): repeatable steps
   * such as granting roles their rights on platform tables.
   */
  afterUp?: (tx: TxSql) => Promise<void>;
}

interface AppliedRow {
  context: string;
  version: number;
  name: string;
  checksum: string;
  applied_at: Date;
}

/** Any 64-bit key works; this one is "stratum migrations" in ASCII, so it shows up recognisably in pg_locks. */
const LOCK_KEY = 0x7374726174756dn;

/**
 * Applies and reverts versioned migrations under one advisory lock, in one transaction per run, so two
 * processes starting at once apply each migration exactly once and a failed run leaves nothing half done.
 * @example const migrator = createMigrator({ sql, migrations }); await migrator.up();
 */
export function createMigrator(options: MigratorOptions) {
  const { sql, migrations } = options;
  const log = options.log ?? (() => {});
  const lockTimeoutMs = options.lockTimeoutMs ?? 15_000;
  const key = (m: { context: string; version: number }) => `${m.context}/${String(m.version).padStart(4, '0')}`;
  const known = new Map(migrations.map((m) => [key(m), m]));

  async function locked<T>(fn: (tx: TxSql, applied: AppliedRow[]) => Promise<T>): Promise<T> {
    try {
      return (await sql.begin(async (tx) => {
        // Migrations may run long: no statement limit, only a bounded wait for the lock.
        await tx`select set_config('lock_timeout', ${String(lockTimeoutMs)}, true), set_config('statement_timeout', '0', true)`;
        await tx`select pg_advisory_xact_lock(${LOCK_KEY.toString()}::bigint)`;
        await tx`select set_config('lock_timeout', '0', true)`;
        await tx.unsafe(`create schema if not exists stratum;
          create table if not exists stratum.schema_migrations (
            seq bigint generated always as identity,
            context text not null,
            version int not null,
            name text not null,
            checksum text not null,
            applied_at timestamptz not null default clock_timestamp(),
            primary key (context, version))`);
        const applied = await tx<AppliedRow[]>`select context, version, name, checksum, applied_at
          from stratum.schema_migrations order by seq`;
        return fn(tx, applied);
      })) as T;
    } catch (error) {
      if (sqlState(error) === '55P03') {
        throw new AppError(
          'MIGRATION.LOCK_TIMEOUT',
          `another process held the migration lock for more than ${lockTimeoutMs} ms`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  const matches = (m: Migration, checksum: string) =>
    m.checksum === checksum || (m.formerChecksums?.includes(checksum) ?? false);

  function check(applied: AppliedRow[]): void {
    for (const row of applied) {
      const migration = known.get(key(row));
      if (!migration) {
        throw new AppError(
          'MIGRATION.UNKNOWN_APPLIED',
          `the database has migration ${key(row)} (${row.name}) that this build does not know: the schema is newer than the code; run a build that has it`,
          { details: { context: row.context, version: row.version } },
        );
      }
      if (!matches(migration, row.checksum)) {
        throw new AppError(
          'MIGRATION.CHECKSUM_MISMATCH',
          `migration ${key(row)}_${row.name}.up.sql was changed after it was applied; restore the applied file and add a new migration instead`,
          { details: { context: row.context, version: row.version } },
        );
      }
    }
  }

  function statusOf(applied: AppliedRow[]): MigrationStatus[] {
    const byKey = new Map(applied.map((r) => [key(r), r]));
    const rows: MigrationStatus[] = migrations.map((m) => {
      const row = byKey.get(key(m));
      if (!row) return { context: m.context, version: m.version, name: m.name, state: 'pending' };
      return {
        context: m.context,
        version: m.version,
        name: m.name,
        state: matches(m, row.checksum) ? 'applied' : 'changed',
        appliedAt: row.applied_at,
      };
    });
    for (const row of applied) {
      if (!known.has(key(row)))
        rows.push({
          context: row.context,
          version: row.version,
          name: row.name,
          state: 'unknown',
          appliedAt: row.applied_at,
        });
    }
    return rows;
  }

  return {
    /** Applies every pending migration; refuses when an applied one changed or is unknown. Returns what it applied. */
    async up(): Promise<Migration[]> {
      return locked(async (tx, applied) => {
        check(applied);
        const done = new Set(applied.map(key));
        const pending = migrations.filter((m) => !done.has(key(m)));
        for (const m of pending) {
          log(`applying ${key(m)}_${m.name}`);
          await tx.unsafe(m.up);
          await tx`insert into stratum.schema_migrations (context, version, name, checksum) values (${m.context}, ${m.version}, ${m.name}, ${m.checksum})`;
        }
        await options.afterUp?.(tx);
        return pending;
      });
    },

    /** Reverts the `count` most recently applied migrations, newest first. Returns what it reverted. */
    async down(count = 1): Promise<Migration[]> {
      return locked(async (tx, applied) => {
        check(applied);
        const targets = applied
          .slice(-count)
          .reverse()
          .map((row) => known.get(key(row))!);
        for (const m of targets) {
          log(`reverting ${key(m)}_${m.name}`);
          await tx.unsafe(m.down);
          await tx`delete from stratum.schema_migrations where context = ${m.context} and version = ${m.version}`;
        }
        return targets;
      });
    },

    /** Every known migration with its state, plus applied ones this build does not know. */
    async status(): Promise<MigrationStatus[]> {
      return locked(async (_tx, applied) => statusOf(applied));
    },

    /** Throws unless every known migration is applied unchanged and nothing unknown is: the start-up check. */
    async verify(): Promise<void> {
      return locked(async (_tx, applied) => {
        check(applied);
        const pending = statusOf(applied).filter((s) => s.state === 'pending');
        if (pending.length > 0) {
          throw new AppError(
            'MIGRATION.INVALID',
            `${pending.length} migration(s) are not applied yet: run \`stratum migrate up\``,
          );
        }
      });
    },
  };
}

export type Migrator = ReturnType<typeof createMigrator>;
