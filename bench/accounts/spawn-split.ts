import { fileURLToPath } from 'node:url';
import { spawnReady } from '../support/spawn-ready.ts';

/** One service of the split deployment, as split-process.ts started it. */
export interface SplitService {
  name: string;
  role: 'accounts' | 'accounts-data' | 'images' | 'quotes';
  url: string;
  pid: number;
}

export interface SplitDeployment {
  /** The gateway's base URL: what is loaded. */
  gateway: string;
  /** accounts-data's base URL: its /metrics count the reads that reached it. */
  data: string;
  services: SplitService[];
  /** The services' processes (not the helper's): their CPU is the deployment's. */
  pids: number[];
  /** SIGTERM to the helper, which stops the services (gateway first) and exits; SIGKILL after STOP_GRACE_MS. */
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./split-process.ts', import.meta.url));
const START_TIMEOUT_MS = 180_000;
/** Five services stopped one after the other, each within its own grace. */
const STOP_GRACE_MS = 150_000;

/**
 * Starts split-process.ts (gateway, accounts-data, images, quotes ×2, each a `stratum serve` of its own) on
 * `database`, in `env`, and resolves once the gateway is ready.
 */
export async function spawnSplit(options: {
  label: string;
  database: string;
  env: NodeJS.ProcessEnv;
}): Promise<SplitDeployment> {
  const helper = await spawnReady<{ services: SplitService[] }>({
    script: SCRIPT,
    args: [options.label],
    env: { ...options.env, DATABASE_URL: options.database },
    label: `the ${options.label} deployment`,
    startTimeoutMs: START_TIMEOUT_MS,
    stopGraceMs: STOP_GRACE_MS,
  });
  const { services } = helper.ready;
  const url = (role: SplitService['role']) => services.find((s) => s.role === role)!.url;
  return {
    gateway: url('accounts'),
    data: url('accounts-data'),
    services,
    pids: services.map((s) => s.pid),
    stop: helper.stop,
  };
}
