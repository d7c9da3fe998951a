import { fileURLToPath } from 'node:url';
import { spawnReady } from '../support/spawn-ready.ts';

export interface BenchServers {
  pid: number;
  ports: { bare: number; cached: number; uncached: number };
  /** SIGTERM, then waits for the process to close its apps, pools and database; SIGKILL if that takes longer than STOP_GRACE_MS. */
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./servers-process.ts', import.meta.url));
/** The first run of the embedded server includes initdb; seeding takes a few seconds more. */
const START_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 90_000;

/** Starts servers-process.ts and resolves with its ports once it listens. */
export async function spawnBenchServers(): Promise<BenchServers> {
  const server = await spawnReady<BenchServers['ports']>({
    script: SCRIPT,
    label: 'the server process',
    startTimeoutMs: START_TIMEOUT_MS,
    stopGraceMs: STOP_GRACE_MS,
  });
  return { pid: server.pid, ports: server.ready, stop: server.stop };
}
