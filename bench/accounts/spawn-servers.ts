import { fileURLToPath } from 'node:url';
import { spawnReady } from '../support/spawn-ready.ts';

export interface BenchServers {
  pid: number;
  /** `uncached` and `bare` only in the first process (not `join`ed). */
  ports: { cached: number; uncached?: number; bare?: number };
  /** The URL of the database the process uses, for the benchmark's other processes. */
  database: string;
  /** SIGTERM, then waits for the process to close its apps, pools and database; SIGKILL if that takes longer than STOP_GRACE_MS. */
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./servers-process.ts', import.meta.url));
/** The first run of the embedded server includes initdb; seeding takes a few seconds more. */
const START_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 90_000;

/**
 * Starts servers-process.ts and resolves with its ports once it listens: the first one (PostgreSQL, seeding, all
 * three targets), or with `join` one more process with only the cached instance on `join.database`, in `env`.
 */
export async function spawnBenchServers(
  options: { label?: string; env?: NodeJS.ProcessEnv; join?: { database: string } } = {},
): Promise<BenchServers> {
  const server = await spawnReady<BenchServers['ports'] & { database: string }>({
    script: SCRIPT,
    args: options.join ? ['--join'] : [],
    env: { ...(options.env ?? process.env), ...(options.join ? { DATABASE_URL: options.join.database } : {}) },
    label: options.label ?? 'the server process',
    startTimeoutMs: START_TIMEOUT_MS,
    stopGraceMs: STOP_GRACE_MS,
  });
  const { database, ...ports } = server.ready;
  return { pid: server.pid, ports, database, stop: server.stop };
}
