import { pino } from 'pino';
import type { Config } from './config/config.ts';
import { openContextPools, type ContextPools } from './context-pools.ts';
import { allMigrations } from './contexts/index.ts';
import { buildApp, type App } from './http/app.ts';
import { checkReachable, createPool, passwordOfUrl, type ConnectTarget, type Sql } from './platform/db/connect.ts';
import { openEmbedded } from './platform/db/embedded/embedded-server.ts';
import { checkDatabaseReadiness, describeReadServer } from './platform/db/replication-status.ts';
import type { TransactionFn } from './platform/db/transaction.ts';
import { createMigrator, type Migrator } from './platform/migrate/migrator.ts';
import { createMetrics } from './platform/observability/metrics.ts';
import { wireContexts } from './wiring.ts';

/** How long start-up waits for the database before it gives up with one line. */
const REACH_TIMEOUT_MS = 6000;

export interface Database {
  /** The administrative pool: migrations, the users context, readiness. */
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
export async function openDatabase(config: Config, role: 'serve' | 'command', log: (line: string) => void): Promise<Database> {
  const embedded = config.database.kind === 'embedded'
    ? await openEmbedded({ home: config.database.home, role, log })
    : undefined;
  const target: ConnectTarget = embedded ? embedded.target : { url: (config.database as { url: string }).url };
  const applicationName = `stratum-${role}-${process.pid}`;
  const sql = createPool(target, { max: config.poolMax, applicationName, connectTimeoutSeconds: 5, statementTimeoutMs: config.statementTimeoutMs });
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
    sql, target, applicationName, adminSecret: embedded?.target.password ?? passwordOfUrl((target as { url: string }).url),
    migrator: createMigrator({ sql, migrations: allMigrations(), log }),
    close,
  };
}

/** Opens the contexts' own pools on a migrated database. */
export function openPools(config: Config, database: Database): Promise<ContextPools> {
  return openContextPools({
    admin: database.sql, target: database.target, adminSecret: database.adminSecret,
    passwords: config.rolePasswords, poolMax: config.poolMax, applicationName: database.applicationName,
    statementTimeoutMs: config.statementTimeoutMs,
    ...(config.readDatabaseUrl ? { readTarget: { url: config.readDatabaseUrl } } : {}),
  });
}

export interface Services {
  app: App;
  transaction: TransactionFn;
  /** Closes the app and what it opened (caches, Redis); not the pools it was given. */
  close(): Promise<void>;
}

/**
 * Builds the HTTP app over open pools: metrics, every context's routes, caches. Tests use this directly.
 * @example const services = await assembleServices(config, { admin: sql, target: { url }, pools, applicationName: 'stratum-test' });
 */
export async function assembleServices(config: Config, deps: { admin: Sql; target: ConnectTarget; pools: ContextPools; applicationName: string }): Promise<Services> {
  const metrics = createMetrics({ sql: deps.admin, applicationName: deps.applicationName, poolMax: config.poolMax });
  const logger = pino({ level: config.logLevel });
  const contexts = await wireContexts(config, { ...deps, metrics, logger });
  try {
    const app = await buildApp({
      bodyLimitBytes: config.bodyLimitBytes,
      requestDeadlineMs: config.txDeadlineMs,
      logger,
      metrics,
      readiness: async () => {
        // Asked at once; the main database's answer comes first (shards on its server fail with it).
        const [primary, reads, wired] = await Promise.allSettled([
          checkDatabaseReadiness(deps.admin),
          deps.pools.reads ? describeReadServer(deps.pools.reads.admin) : undefined,
          contexts.readiness(),
        ]);
        for (const answer of [primary, reads, wired]) if (answer.status === 'rejected') throw answer.reason;
        const value = <T>(answer: PromiseSettledResult<T>) => (answer as PromiseFulfilledResult<T>).value;
        return { ...value(primary), ...(value(reads) ? { reads: value(reads) } : {}), orders: value(wired) };
      },
      routes: contexts.routes,
    });
    return {
      app,
      transaction: contexts.transaction,
      async close() {
        await app.close();
        await contexts.close();
      },
    };
  } catch (error) {
    await contexts.close();
    throw error;
  }
}

export interface RunningServer {
  app: App;
  url: string;
  database: Database;
  transaction: TransactionFn;
  /** Stops taking requests, waits for those in flight, closes the pools, stops an owned embedded server. */
  stop(): Promise<void>;
}

/**
 * The composition root: database, migrations, context pools, services, listening on HOST:PORT.
 * @example const server = await startServer(loadConfig(process.env, process.cwd()), console.log);
 */
export async function startServer(config: Config, log: (line: string) => void): Promise<RunningServer> {
  const database = await openDatabase(config, 'serve', log);
  let pools: ContextPools | undefined;
  let services: Services | undefined;
  try {
    const applied = await database.migrator.up();
    if (applied.length > 0) log(`applied ${applied.length} migration(s)`);
    pools = await openPools(config, database);
    services = await assembleServices(config, { admin: database.sql, target: database.target, pools, applicationName: database.applicationName });
    const url = await services.app.listen({ host: config.host, port: config.port });
    let stopping: Promise<void> | undefined;
    const running = { services, pools };
    return {
      app: services.app, url, database, transaction: services.transaction,
      stop() {
        stopping ??= (async () => {
          const seconds = Math.ceil(config.shutdownTimeoutMs / 1000);
          try {
            await closeWithin(running.services, config.shutdownTimeoutMs, log);
          } finally {
            // Whatever happened above, the pools and an owned embedded server are closed.
            try {
              await running.pools.end(seconds);
            } finally {
              await database.close(seconds);
            }
          }
        })();
        return stopping;
      },
    };
  } catch (error) {
    await services?.close().catch(() => {});
    await pools?.end(0);
    await database.close(0);
    throw error;
  }
}

/** Closes the app, but cuts the requests still open after `timeoutMs` so a stuck client cannot stall shutdown. */
async function closeWithin(services: Services, timeoutMs: number, log: (line: string) => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const cut = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      log(`requests still open after ${timeoutMs} ms; closing their connections`);
      services.app.server.closeAllConnections();
      resolve();
    }, timeoutMs);
  });
  try {
    await Promise.race([services.close(), cut]);
  } finally {
    clearTimeout(timer);
  }
}
