/**
 * The benchmark's one-process server process (started by spawn-servers.ts; run it alone with
 * `node --import tsx bench/accounts/servers-process.ts [--join]`), everything on 127.0.0.1:
 * - by default: PostgreSQL (embedded under .stratum-bench-accounts, or DATABASE_URL), migrated and seeded;
 *   stratum with its default cache settings; stratum with CACHE_TTL_MS=0; and the bare Fastify app;
 * - with `--join`: the database of DATABASE_URL, which another server process migrated and seeded; stratum with its
 *   default cache settings only (the same instance again, in a process started with another environment, e.g.
 *   OTEL_SDK_DISABLED=true, which holds for a whole process).
 * Prints `{"cached":port,"uncached":port,"bare":port,"database":url}` (without uncached and bare with `--join`) on
 * stdout once all listen, and nothing else there: `database` is the URL the other processes of the benchmark
 * reach the same database with. Stops everything on SIGTERM or SIGINT, or when stdin closes (the parent went away).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { openDatabase } from '../../src/app/database.ts';
import { openPools } from '../../src/app/server.ts';
import { assembleServices } from '../../src/app/services.ts';
import type { ConnectTarget } from '../../src/platform/db/connect.ts';
import { buildBareApp } from './bare-app.ts';
import { SEEDED_ACCOUNTS } from './dataset.ts';
import { seedBenchAccounts } from './seed.ts';
import { serverLifecycle } from '../support/server-lifecycle.ts';

const STRATUM_HOME = '.stratum-bench-accounts';

const join = process.argv.includes('--join');
const log = (line: string) => process.stderr.write(`[bench servers${join ? ' (joined)' : ''}] ${line}\n`);

const { onStop, stop } = serverLifecycle(log);

/**
 * The caller's environment with the benchmark's home, silent logs and loopback; without the cache variables
 * and REDIS_URL, so "cached" means stratum's default: the in-process tier, CACHE_TTL_MS=30000.
 */
function serverEnv(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const { CACHE_TTL_MS: _ttl, CACHE_MAX_ENTRIES: _max, REDIS_URL: _redis, ...rest } = env;
  return { ...rest, STRATUM_HOME, LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0' };
}

async function listen(name: string, app: FastifyInstance, close: () => Promise<void>): Promise<number> {
  onStop(name, close);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

function urlOf(target: ConnectTarget): string {
  if ('url' in target) return target.url;
  const { user, password, host, port, database } = target;
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password ?? '')}@${host}:${port}/${database}`;
}

try {
  const env = serverEnv(process.env);
  if (join && !env.DATABASE_URL) throw new Error('--join needs DATABASE_URL (the first server process prints it)');
  const configs: Partial<Record<'cached' | 'uncached', Config>> = {
    cached: loadConfig(env, process.cwd()),
    ...(join ? {} : { uncached: loadConfig({ ...env, CACHE_TTL_MS: '0' }, process.cwd()) }),
  };
  const database = await openDatabase(configs.cached!, 'serve', log);
  onStop('the database', () => database.close());
  if (!join) await database.migrator.up();

  const ready: Record<string, number | string> = { database: urlOf(database.target) };
  for (const [name, config] of Object.entries(configs)) {
    const pools = await openPools(config, database);
    onStop(`${name} pools`, () => pools.end());
    if (name === 'cached' && !join) await seedBenchAccounts(database.sql, pools, SEEDED_ACCOUNTS, log);
    const services = await assembleServices(config, {
      admin: database.sql,
      target: database.target,
      pools,
      applicationName: database.applicationName,
    });
    ready[name] = await listen(`stratum ${name}`, services.app, () => services.close());
  }
  if (!join) {
    const bare = await buildBareApp();
    ready.bare = await listen('bare Fastify', bare, () => bare.close());
  }
  process.stdout.write(`${JSON.stringify(ready)}\n`);
} catch (error) {
  log(`start-up failed: ${(error as Error).stack ?? error}`);
  await stop(1);
}
