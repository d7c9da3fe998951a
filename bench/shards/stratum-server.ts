import { fileURLToPath } from 'node:url';
import { spawnReady } from '../support/spawn-ready.ts';

export interface StratumServer {
  pid: number;
  shardCount: number;
  baseUrl: string;
  /** Whether its outbox relays run (not with ROLE=api). */
  relays: boolean;
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./server-process.ts', import.meta.url));

/**
 * Starts stratum in a process of its own over the catalog database `catalogUrl` with `shardCount` shard
 * databases beside it. Variables that would point stratum elsewhere (ORDERS_SHARDS, REDIS_URL, another
 * broker) are cleared; the contexts' role passwords are left as given, as for `stratum serve`.
 */
export async function startStratumServer(catalogUrl: string, shardCount: number): Promise<StratumServer> {
  const server = await spawnReady<{ port: number; relays: boolean }>({
    script: SCRIPT,
    label: `the stratum server (${shardCount} shard(s))`,
    startTimeoutMs: 180_000,
    stopGraceMs: 60_000,
    env: {
      ...process.env,
      DATABASE_URL: catalogUrl,
      ORDERS_SHARD_COUNT: String(shardCount),
      ORDERS_SHARDS: '',
      REDIS_URL: '',
      BROKER: '',
      BROKER_URL: '',
      STRATUM_FAULTS: '',
    },
  });
  return {
    pid: server.pid,
    shardCount,
    baseUrl: `http://127.0.0.1:${server.ready.port}`,
    relays: server.ready.relays,
    stop: server.stop,
  };
}
