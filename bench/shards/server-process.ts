/**
 * The shards benchmark's stratum server (started by stratum-server.ts): `stratum serve` as main.ts assembles
 * it, over the catalog database in DATABASE_URL with ORDERS_SHARD_COUNT shard databases beside it (created and
 * migrated at start when missing), on 127.0.0.1 and a free port. Prints `{"port":n,"relays":true}` on stdout once it
 * listens, and nothing else there. Stops on SIGTERM or SIGINT, or when stdin closes.
 */
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/config.ts';
import { openDatabase } from '../../src/app/database.ts';
import { openPools } from '../../src/app/server.ts';
import { assembleServices } from '../../src/app/services.ts';
import { serverLifecycle } from '../support/server-lifecycle.ts';

const log = (line: string) =>
  process.stderr.write(`[bench server ${process.env.ORDERS_SHARD_COUNT} shard(s)] ${line}\n`);

const { onStop, stop } = serverLifecycle(log);

try {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0' }, process.cwd());
  if (config.database.kind !== 'url') throw new Error('DATABASE_URL must name the catalog database');
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
  // Relays run unless ROLE=api: then nothing forwards the shards' outboxes and the benchmark does not wait for it.
  process.stdout.write(
    `${JSON.stringify({ port: (services.app.server.address() as AddressInfo).port, relays: config.role !== 'api' })}\n`,
  );
} catch (error) {
  log(`start-up failed: ${(error as Error).stack ?? error}`);
  await stop(1);
}
