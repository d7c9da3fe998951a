/**
 * The benchmark's split deployment (started by spawn-split.ts; run it alone with
 * `DATABASE_URL=… node --import tsx bench/accounts/split-process.ts [label]`): the accounts system as
 * `stratum landscape up` starts it, each service a `stratum serve` process of its own on 127.0.0.1 with its ROLE:
 * accounts-data ×1, images ×1, quotes ×2 and the gateway (ROLE=accounts) ×1, on the database of DATABASE_URL
 * (migrated and seeded by the one-process server process), with this process's environment otherwise (e.g.
 * OTEL_SDK_DISABLED=true). Prints `{"services":[{"name","role","url","pid"},…]}` on stdout once every service
 * answers /readyz with 200 (the gateway last), and nothing else there. Stops the services on SIGTERM or SIGINT,
 * or when stdin closes (the parent went away), the gateway first and accounts-data last.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { serverLifecycle } from '../support/server-lifecycle.ts';
import type { SplitService } from './spawn-split.ts';

const BIN = fileURLToPath(new URL('../../bin/stratum.js', import.meta.url));
const READY_TIMEOUT_MS = 120_000;
/** Above a service's own shutdown timeout: it finishes what is in flight, then exits. */
const STOP_GRACE_MS = 30_000;

const label = process.argv[2] ?? 'split';
const log = (line: string) => process.stderr.write(`[bench ${label}] ${line}\n`);
const { onStop, stop } = serverLifecycle(log);
const children = new Set<ChildProcess>();
// Whatever ends this process, no service outlives it.
process.once('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Ports free now on loopback, all different (each held open until all are known). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return server;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * The caller's environment for every service: its database and the rest as given (OTEL_* included), without what
 * would change the comparison with the one-process targets (the cache variables and REDIS_URL, as there: no
 * process of the split deployment caches a view anyway) or what each service gets of its own.
 */
function baseEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const {
    CACHE_TTL_MS: _ttl,
    CACHE_MAX_ENTRIES: _max,
    REDIS_URL: _redis,
    ROLE: _role,
    PORT: _port,
    INSTANCE_NAME: _name,
    ...rest
  } = env;
  return { ...rest, LOG_LEVEL: 'silent', HOST: '127.0.0.1' };
}

/** Starts one service, its stderr on ours with its name in front; stopped by this process's lifecycle. */
function startService(service: Omit<SplitService, 'pid'>, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { ...env, ROLE: service.role, PORT: new URL(service.url).port, INSTANCE_NAME: service.name },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let pending = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) log(`${service.name}: ${line}`);
  });
  const exited = once(child, 'exit');
  let stopping = false;
  void exited.then(([code, signal]) => {
    if (!stopping) log(`${service.name} ended by itself (${signal ?? `exit code ${code}`})`);
  });
  onStop(service.name, async () => {
    stopping = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  });
  return child;
}

/** Waits until `url`/readyz answers 200; fails when the child exits first or READY_TIMEOUT_MS pass. */
async function ready(name: string, url: string, child: ChildProcess): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    const ok = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} was not ready within ${READY_TIMEOUT_MS / 1000} s`);
}

try {
  if (!process.env.DATABASE_URL) throw new Error('needs DATABASE_URL (the one-process server process prints it)');
  const [data, images, quotes1, quotes2, gateway] = (await freePorts(5)).map((port) => `http://127.0.0.1:${port}`);
  const plan: Array<Omit<SplitService, 'pid'>> = [
    { name: 'accounts-data-1', role: 'accounts-data', url: data! },
    { name: 'images-1', role: 'images', url: images! },
    { name: 'quotes-1', role: 'quotes', url: quotes1! },
    { name: 'quotes-2', role: 'quotes', url: quotes2! },
    { name: 'accounts-1', role: 'accounts', url: gateway! },
  ];
  const env = {
    ...baseEnv(process.env),
    ACCOUNTS_DATA_URLS: data!,
    IMAGES_URLS: images!,
    QUOTES_URLS: `${quotes1},${quotes2}`,
  };
  const started: SplitService[] = [];
  const launch = async (service: Omit<SplitService, 'pid'>) => {
    const child = startService(service, env);
    started.push({ ...service, pid: child.pid! });
    await ready(service.name, service.url, child);
  };
  // As `landscape up`: accounts-data first (it checks the migrations), then images and quotes, then the gateway.
  await launch(plan[0]!);
  await Promise.all(plan.slice(1, 4).map(launch));
  await launch(plan[4]!);
  log(`up: ${started.map((s) => `${s.name} ${s.url} (pid ${s.pid})`).join(', ')}`);
  process.stdout.write(`${JSON.stringify({ services: started })}\n`);
} catch (error) {
  log(`start-up failed: ${(error as Error).stack ?? error}`);
  await stop(1);
}
