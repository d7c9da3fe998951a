import type { Config } from './config/config.ts';
import { allMigrations } from './contexts/index.ts';
import { usersRoutes } from './contexts/users/routes.ts';
import { buildApp, type App } from './http/app.ts';
import { checkReachable, createPool, type ConnectTarget, type Sql } from './platform/db/connect.ts';
import { openEmbedded } from './platform/db/embedded/embedded-server.ts';
import { createTransaction, type TransactionFn } from './platform/db/transaction.ts';
import { createMigrator, type Migrator } from './platform/migrate/migrator.ts';
import { createMetrics } from './platform/observability/metrics.ts';

/** How long start-up waits for the database before it gives up with one line. */
const REACH_TIMEOUT_MS = 8000;

export interface Database {
  sql: Sql;
  target: ConnectTarget;
  applicationName: string;
  migrator: Migrator;
  /** Ends the pool (waiting up to `timeoutSeconds` for running queries) and stops an embedded server we own. */
  close(timeoutSeconds?: number): Promise<void>;
}

/**
 * Opens the configured database: the embedded server of STRATUM_HOME (started, or the running one found),
 * or DATABASE_URL. Fails within ~8 s with one line naming the host when the database cannot be reached.
 */
export async function openDatabase(config: Config, role: 'serve' | 'command', log: (line: string) => void): Promise<Database> {
  const embedded = config.database.kind === 'embedded'
    ? await openEmbedded({ home: config.database.home, role, log })
    : undefined;
  const target: ConnectTarget = embedded ? embedded.target : { url: (config.database as { url: string }).url };
  const applicationName = `stratum-${role}-${process.pid}`;
  const sql = createPool(target, { max: config.poolMax, applicationName, connectTimeoutSeconds: 5 });
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
  return { sql, target, applicationName, migrator: createMigrator({ sql, migrations: allMigrations(), log }), close };
}

export interface RunningServer {
  app: App;
  url: string;
  database: Database;
  transaction: TransactionFn;
  /** Stops taking requests, waits for those in flight, closes the pool, stops an owned embedded server. */
  stop(): Promise<void>;
}

export interface Services {
  app: App;
  transaction: TransactionFn;
}

/**
 * Wires transactions, metrics and every context's routes over an open pool. Tests use this directly.
 * @example const { app } = await assembleServices(config, sql, 'stratum-test');
 */
export async function assembleServices(config: Config, sql: Sql, applicationName: string): Promise<Services> {
  const metrics = createMetrics({ sql, applicationName, poolMax: config.poolMax });
  const transaction = createTransaction({
    sql, defaultDeadlineMs: config.txDeadlineMs, now: Date.now, random: Math.random, observer: metrics.transactionObserver,
  });
  const app = await buildApp({
    bodyLimitBytes: config.bodyLimitBytes,
    logLevel: config.logLevel,
    metrics,
    readiness: async () => { await sql`select 1`; },
    routes: [usersRoutes({ sql, transaction })],
  });
  return { app, transaction };
}

/**
 * The composition root: database, migrations, transactions, metrics and routes, listening on HOST:PORT.
 * @example const server = await startServer(loadConfig(process.env, process.cwd()), console.log);
 */
export async function startServer(config: Config, log: (line: string) => void): Promise<RunningServer> {
  const database = await openDatabase(config, 'serve', log);
  try {
    const applied = await database.migrator.up();
    if (applied.length > 0) log(`applied ${applied.length} migration(s)`);
    const { app, transaction } = await assembleServices(config, database.sql, database.applicationName);
    const url = await app.listen({ host: config.host, port: config.port });
    let stopping: Promise<void> | undefined;
    return {
      app, url, database, transaction,
      stop() {
        stopping ??= (async () => {
          await app.close();
          await database.close(Math.ceil(config.shutdownTimeoutMs / 1000));
        })();
        return stopping;
      },
    };
  } catch (error) {
    await database.close(0);
    throw error;
  }
}
