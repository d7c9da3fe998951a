/**
 * The import benchmark's stratum server (started by bench/import.ts; alone: `node --import tsx
 * bench/import/server-process.ts`): PostgreSQL (embedded under .stratum-bench-import, or DATABASE_URL), migrated,
 * the contexts' pools, and stratum's app as `stratum serve` assembles it, on 127.0.0.1 and a free port. Prints
 * `{"port":n,"databaseUrl":"postgres://…"}` on stdout once it listens (the URL is for the benchmark's own
 * baselines and table resets), and nothing else there. Stops on SIGTERM or SIGINT, or when stdin closes.
 */
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/config.ts';
import { openDatabase } from '../../src/app/database.ts';
import { openPools } from '../../src/app/server.ts';
import { assembleServices } from '../../src/app/services.ts';
import type { ConnectTarget } from '../../src/platform/db/connect.ts';
import { BENCH_IMPORT_HOME } from './options.ts';

import { serverLifecycle } from '../support/server-lifecycle.ts';

const log = (line: string) => process.stderr.write(`[bench server] ${line}\n`);

const { onStop, stop } = serverLifecycle(log);

function urlOf(target: ConnectTarget): string {
  if ('url' in target) return target.url;
  return `postgres://${encodeURIComponent(target.user)}:${encodeURIComponent(target.password ?? '')}@${target.host}:${target.port}/${target.database}`;
}

try {
  const config = loadConfig(
    { ...process.env, STRATUM_HOME: BENCH_IMPORT_HOME, LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0' },
    process.cwd(),
  );
  const database = await openDatabase(config, 'serve', log);
  onStop('the database', () => database.close());
  await database.migrator.up();
  const pools = await openPools(config, database);
  onStop('the pools', () => pools.end());
  const services = await assembleServices(config, {
    admin: database.sql,
    target: database.target,
    pools,
    applicationName: database.applicationName,
  });
  onStop('stratum', () => services.close());
  await services.app.listen({ host: config.host, port: 0 });
  const port = (services.app.server.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ port, databaseUrl: urlOf(database.target) })}\n`);
} catch (error) {
  log(`start-up failed: ${(error as Error).stack ?? error}`);
  await stop(1);
}
