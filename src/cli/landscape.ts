import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/config.ts';

export const LANDSCAPE_HELP = `usage: stratum landscape up [--images N] [--quotes N] [--port P]

Starts the split accounts deployment on 127.0.0.1, each service a process of its own (\`stratum serve\` with its
ROLE): accounts-data on P+1, images on P+2.., quotes after them, and the gateway (ROLE=accounts) on P
(default PORT, 8080). Defaults: one images instance, two quotes instances, N up to 9. The database is
DATABASE_URL, or the embedded PostgreSQL of STRATUM_HOME (accounts-data starts it, images shares it).
Logs are prefixed with each service's name; Ctrl-C (or SIGTERM) stops every service, the gateway first.`;

interface Planned {
  name: string;
  role: string;
  port: number;
}

/**
 * The services of a landscape and their ports: the gateway on `port`, accounts-data, images and quotes after it.
 * @example planLandscape(8080, 1, 2) // accounts 8080, accounts-data-1 8081, images-1 8082, quotes-1 8083, quotes-2 8084
 */
export function planLandscape(port: number, images: number, quotes: number): Planned[] {
  const planned: Planned[] = [{ name: 'accounts-data-1', role: 'accounts-data', port: port + 1 }];
  for (let i = 1; i <= images; i++) planned.push({ name: `images-${i}`, role: 'images', port: port + 1 + i });
  for (let i = 1; i <= quotes; i++) planned.push({ name: `quotes-${i}`, role: 'quotes', port: port + 1 + images + i });
  planned.push({ name: 'accounts-1', role: 'accounts', port });
  return planned;
}

function count(rest: string[], flag: string, fallback: number): number {
  const at = rest.indexOf(flag);
  if (at < 0) return fallback;
  const raw = rest[at + 1] ?? '';
  if (!/^[1-9]$/.test(raw)) throw new Error(`${flag} must be a whole number from 1 to 9, got "${raw}"`);
  return Number(raw);
}

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/stratum.js');

/** Waits until `url`/readyz answers 200, the child exits, or `ms` pass. */
async function ready(url: string, child: ChildProcess, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`exited (${child.exitCode ?? child.signalCode})`);
    const ok = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not ready within ${ms / 1000} s`);
}

/**
 * `stratum landscape up`: the split deployment on loopback until Ctrl-C. Each line a service writes is printed
 * with its name in front.
 */
export async function runLandscape(
  config: Config,
  rest: string[],
  io: { out: (line: string) => void; err: (line: string) => void },
): Promise<number> {
  if (rest[0] !== 'up') {
    io.err(`landscape: unknown subcommand "${rest[0] ?? ''}"; usage: stratum landscape up [--images N] [--quotes N]`);
    return 2;
  }
  const images = count(rest, '--images', 1);
  const quotes = count(rest, '--quotes', 2);
  const port = rest.includes('--port') ? Number(rest[rest.indexOf('--port') + 1]) : config.port;
  if (!Number.isInteger(port) || port < 1 || port > 65_000)
    throw new Error(`--port must be a port number, got ${port}`);
  const plan = planLandscape(port, images, quotes);
  const url = (p: Planned) => `http://127.0.0.1:${p.port}`;
  const urlsOf = (role: string) =>
    plan
      .filter((p) => p.role === role)
      .map(url)
      .join(',');
  const width = Math.max(...plan.map((p) => p.name.length));
  const children: Array<{ planned: Planned; child: ChildProcess }> = [];

  const start = (planned: Planned) => {
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: {
        ...process.env,
        ROLE: planned.role,
        HOST: '127.0.0.1',
        PORT: String(planned.port),
        INSTANCE_NAME: planned.name,
        ACCOUNTS_DATA_URLS: urlsOf('accounts-data'),
        IMAGES_URLS: urlsOf('images'),
        QUOTES_URLS: urlsOf('quotes'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own: Ctrl-C reaches the landscape only, which stops each service once, in order.
      detached: true,
    });
    const prefix = `${planned.name.padEnd(width)} |`;
    for (const stream of [child.stdout!, child.stderr!]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) io.out(`${prefix} ${line}`);
      });
    }
    children.push({ planned, child });
    return child;
  };

  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    (stopping ??= (async () => {
      // The gateway first, accounts-data (which may own the embedded server) last.
      for (const { planned, child } of [...children].reverse()) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), config.shutdownTimeoutMs + 5000);
        await exited;
        clearTimeout(timer);
        io.err(`landscape: ${planned.name} stopped`);
      }
    })());

  // Whatever ends this process, no service outlives it.
  process.once('exit', () => {
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const signals = new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  try {
    // accounts-data first (it migrates and may start the embedded server), then the rest at once, then the gateway.
    const [data, ...others] = plan;
    const gateway = others.pop()!;
    await ready(url(data!), start(data!), 120_000).catch((e: Error) => {
      throw new Error(`${data!.name}: ${e.message}`);
    });
    await Promise.all(
      others.map((p) =>
        ready(url(p), start(p), 120_000).catch((e: Error) => {
          throw new Error(`${p.name}: ${e.message}`);
        }),
      ),
    );
    await ready(url(gateway), start(gateway), 60_000).catch((e: Error) => {
      throw new Error(`${gateway.name}: ${e.message}`);
    });
  } catch (error) {
    io.err(`landscape: ${(error as Error).message}; stopping what started`);
    await stopAll();
    return 1;
  }
  for (const p of plan)
    io.err(
      `landscape: ${p.name.padEnd(width)} ${url(p)} (ROLE=${p.role}, pid ${children.find((c) => c.planned === p)!.child.pid})`,
    );
  io.err(`landscape: the accounts API is ${url(plan.at(-1)!)}/accounts; Ctrl-C stops every service`);
  // A service that dies is reported; the others keep running (that is what the landscape is for).
  for (const { planned, child } of children)
    child.once('exit', (code, signal) => {
      if (!stopping) io.err(`landscape: ${planned.name} exited (${code ?? signal})`);
    });
  await signals;
  await stopAll();
  return 0;
}
