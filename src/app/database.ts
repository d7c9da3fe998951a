import type { Config } from '../config/config.ts';
import { checkReachable, createPool, passwordOfUrl, type ConnectTarget, type Sql } from '../platform/db/connect.ts';
import { openEmbedded } from '../platform/db/embedded/embedded-server.ts';
import type { Migrator } from '../platform/migrate/migrator.ts';
import { createMainMigrator } from './migrations.ts';

/** How long start-up waits for the database before it gives up with one line. */
const REACH_TIMEOUT_MS = 6000;

export interface Database {
  /** The administrative pool: migrations, the contexts without a role of their own, readiness. */
  sql: Sql;
  target: ConnectTarget;
  /** The embedded server's password, or DATABASE_URL's: context role passwords derive from it. */
  adminSecret: string | undefined;
  applicationName: string;
  migrator: Migrator;
  /** Ends the pool (waiting up to `timeoutSeconds` for running queries) and stops an embedded server we own. */
  close(timeoutSeconds?: number): Promise<void>;
}

/**
 * Opens the configured database: the embedded server of STRATUM_HOME (started, or the running one found),
 * or DATABASE_URL. Fails within ~6 s with one line naming the host when the database cannot be reached.
 */
export async function openDatabase(
  config: Config,
  role: 'serve' | 'command',
  log: (line: string) => void,
): Promise<Database> {
  const embedded =
    config.database.kind === 'embedded'
      ? await openEmbedded({ home: config.database.home, role, log, env: config.childEnv })
      : undefined;
  const target: ConnectTarget = embedded ? embedded.target : { url: (config.database as { url: string }).url };
  const applicationName = `stratum-${role}-${process.pid}`;
  const sql = createPool(target, {
    max: config.poolMax,
    applicationName,
    connectTimeoutSeconds: 5,
    statementTimeoutMs: config.statementTimeoutMs,
  });
  const close = async (timeoutSeconds = 5) => {
    await sql.end({ timeout: timeoutSeconds });
    await embedded?.release();
  };
  try {
    await checkReachable(sql, target, REACH_TIMEOUT_MS);
  } catch (error) {
    await close(0);
    throw error;
  }
  return {
    // Context role passwords derive from the administrative secret we hold: the embedded server's, or the URL's.
    sql,
    target,
    applicationName,
    adminSecret: embedded?.target.password ?? passwordOfUrl((target as { url: string }).url),
    migrator: createMainMigrator(sql, { log }),
    close,
  };
}
