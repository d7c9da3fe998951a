import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';

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

/**
 * Starts servers-process.ts and resolves with its ports once it listens. Its stderr goes to ours; its stdin
 * stays open as a lifeline, so it stops by itself if this process dies without calling `stop`.
 */
export async function spawnBenchServers(): Promise<BenchServers> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let running = true;
  let stopRequested = false;
  exited.then(([code, signal]) => {
    running = false;
    if (!stopRequested) process.stderr.write(`[bench] the server process ended by itself (${signal ?? `exit code ${code}`})\n`);
  }, () => { running = false; });
  // Only matters while waiting for the ports; handled here so a later, normal exit is not an unhandled rejection.
  const exitedEarly = exited.then(([code, signal]) => {
    throw new Error(`the server process ended (${signal ?? `exit code ${code}`}) before listening; its output is above`);
  });
  exitedEarly.catch(() => {});

  // Once: a second SIGTERM would meet the default handler and kill the process before it stopped PostgreSQL.
  let stopping: Promise<void> | undefined;
  const stop = () => stopping ??= (async () => {
    stopRequested = true;
    if (!running) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    const [code, signal] = await exited;
    clearTimeout(timer);
    if (code !== 0) process.stderr.write(`[bench] the server process ended with ${signal ?? `exit code ${code}`}\n`);
  })();

  const lines = readline.createInterface({ input: child.stdout });
  let timer: NodeJS.Timeout | undefined;
  try {
    const ports = await Promise.race([
      once(lines, 'line').then(([line]) => JSON.parse(line as string) as BenchServers['ports']),
      exitedEarly,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`the server process did not listen within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS); }),
    ]);
    return { pid: child.pid!, ports, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
    lines.close();
    child.stdout.resume();
  }
}
