import { spawn } from 'node:child_process';
import { once } from 'node:events';
import readline from 'node:readline';

export interface ReadyProcess<T> {
  pid: number;
  /** The JSON the process printed on its first line of stdout once ready. */
  ready: T;
  /** SIGTERM, then waits for the process to close what it opened; SIGKILL after `stopGraceMs`. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SpawnReadyOptions {
  /** A TypeScript file run with `node --import tsx`. */
  script: string;
  /** Extra Node flags before the script, e.g. `--cpu-prof`. */
  nodeArgs?: readonly string[];
  /** Arguments after the script (its `process.argv.slice(2)`). */
  args?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Names the process in messages. */
  label: string;
  startTimeoutMs: number;
  stopGraceMs: number;
}

/**
 * Starts a benchmark's helper process and resolves once it prints one line of JSON on stdout (e.g. its port).
 * Its stderr goes to ours; its stdin stays open as a lifeline, so a helper that stops when stdin ends goes
 * away by itself if this process dies without calling `stop`.
 * @example const server = await spawnReady<{ port: number }>({ script, label: 'the server process', startTimeoutMs: 180_000, stopGraceMs: 60_000 });
 */
export async function spawnReady<T>(options: SpawnReadyOptions): Promise<ReadyProcess<T>> {
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), '--import', 'tsx', options.script, ...(options.args ?? [])],
    {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let running = true;
  let stopRequested = false;
  exited.then(
    ([code, signal]) => {
      running = false;
      if (!stopRequested)
        process.stderr.write(`[bench] ${options.label} ended by itself (${signal ?? `exit code ${code}`})\n`);
    },
    () => {
      running = false;
    },
  );
  // Only matters while waiting for the ready line; handled here so a later, normal exit is not an unhandled rejection.
  const exitedEarly = exited.then(([code, signal]) => {
    throw new Error(
      `${options.label} ended (${signal ?? `exit code ${code}`}) before it was ready; its output is above`,
    );
  });
  exitedEarly.catch(() => {});

  // Once: a second SIGTERM would meet the default handler and kill the process before it stopped cleanly.
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopRequested = true;
      if (!running) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), options.stopGraceMs);
      const [code, signal] = await exited;
      clearTimeout(timer);
      if (code !== 0) process.stderr.write(`[bench] ${options.label} ended with ${signal ?? `exit code ${code}`}\n`);
    })());

  const lines = readline.createInterface({ input: child.stdout });
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = await Promise.race([
      once(lines, 'line').then(([line]) => JSON.parse(line as string) as T),
      exitedEarly,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${options.label} was not ready within ${options.startTimeoutMs / 1000} s`)),
          options.startTimeoutMs,
        );
      }),
    ]);
    return { pid: child.pid!, ready, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
    lines.close();
    child.stdout.resume();
  }
}
