import type { Config } from '../config/config.ts';
import type { TransactionFn } from '../platform/db/transaction.ts';
import type { App } from '../http/app.ts';
import { openContextPools, type ContextPools } from './context-pools.ts';
import type { ContextModule } from '../platform/context/context-module.ts';
import { openDatabase, type Database } from './database.ts';
import { assembleServices, type Services } from './services.ts';

/** Opens the contexts' own pools on a migrated database (of `contexts` only, when given). */
export function openPools(
  config: Config,
  database: Database,
  contexts?: readonly ContextModule<Config>[],
): Promise<ContextPools> {
  return openContextPools({
    ...(contexts ? { contexts } : {}),
    admin: database.sql,
    target: database.target,
    adminSecret: database.adminSecret,
    passwords: config.rolePasswords,
    poolMax: config.poolMax,
    applicationName: database.applicationName,
    statementTimeoutMs: config.statementTimeoutMs,
    ...(config.readDatabaseUrl ? { readTarget: { url: config.readDatabaseUrl } } : {}),
  });
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
export async function startServer(
  config: Config,
  log: (line: string) => void,
  only: {
    /** On the embedded server: `command` joins the one a running server owns (the split deployment's second service). */
    embeddedRole?: 'serve' | 'command';
    contexts?: readonly ContextModule<Config>[];
    ports?: Readonly<Record<string, unknown>>;
    close?: () => Promise<void>;
  } = {},
): Promise<RunningServer> {
  const database = await openDatabase(config, only.embeddedRole ?? 'serve', log);
  let pools: ContextPools | undefined;
  let services: Services | undefined;
  try {
    const applied = await database.migrator.up();
    if (applied.length > 0) log(`applied ${applied.length} migration(s)`);
    pools = await openPools(config, database, only.contexts);
    services = await assembleServices(config, {
      admin: database.sql,
      target: database.target,
      pools,
      applicationName: database.applicationName,
      ...(only.contexts ? { contexts: only.contexts } : {}),
      ...(only.ports ? { ports: only.ports } : {}),
    });
    const url = await services.app.listen({ host: config.host, port: config.port });
    let stopping: Promise<void> | undefined;
    const running = { services, pools };
    return {
      app: services.app,
      url,
      database,
      transaction: services.transaction,
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
              await only.close?.();
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
    await only.close?.().catch(() => {});
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
