import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

// The split accounts deployment as `stratum landscape up` starts it (src/cli/landscape.ts), but with every process
// in reach: the chaos run kills one with SIGKILL and starts it again on its port. Spawned here rather than through
// landscape.ts because tools may not import the CLI (the `nothing-to-cli` rule of npm run deps:check).

export type ServiceRole = 'accounts' | 'accounts-data' | 'images' | 'quotes';

/** One service of the landscape: its name (`quotes-1`), its ROLE and the loopback port it listens on. */
export interface ServiceSpec {
  name: string;
  role: ServiceRole;
  port: number;
}

type Env = Record<string, string | undefined>;

/**
 * The services of a landscape on `ports`, in the order they start: accounts-data, the images and quotes instances,
 * the gateway last. `ports` lists one port per service in that order.
 * @example planServices([8081, 8082, 8083, 8084, 8085, 8080], 2, 2) // accounts-data-1 8081, images-1 8082, …, accounts-1 8080
 */
export function planServices(ports: readonly number[], images: number, quotes: number): ServiceSpec[] {
  if (ports.length !== images + quotes + 2) throw new Error(`planServices: ${images + quotes + 2} ports needed`);
  const specs: ServiceSpec[] = [{ name: 'accounts-data-1', role: 'accounts-data', port: ports[0]! }];
  for (let i = 1; i <= images; i++) specs.push({ name: `images-${i}`, role: 'images', port: ports[i]! });
  for (let i = 1; i <= quotes; i++) specs.push({ name: `quotes-${i}`, role: 'quotes', port: ports[images + i]! });
  specs.push({ name: 'accounts-1', role: 'accounts', port: ports.at(-1)! });
  return specs;
}

export interface ServiceLandscapeOptions {
  /** accounts-data first, then images and quotes, the gateway (ROLE=accounts) last: the order they start in. */
  specs: readonly ServiceSpec[];
  /** The environment every service starts from (DATABASE_URL or STRATUM_HOME, LOG_LEVEL, timeouts). */
  env: Env;
  /** Each line a service writes, stdout and stderr. */
  onLine: (name: string, line: string) => void;
  /** How long a service may take to stop after SIGTERM before it gets SIGKILL. */
  graceMs: number;
}

export interface ServiceLandscape {
  url(name: string): string;
  /** Starts every service, each ready (`/readyz` 200) before the next group; rejects naming the one that failed. */
  start(): Promise<void>;
  /** SIGKILLs the service's process; resolves with its pid once it has exited. */
  kill(name: string): Promise<number>;
  /** Starts the service again on its port; resolves with its pid and `performance.now()` when it said it listens. */
  restart(name: string): Promise<{ pid: number; listeningAt: number }>;
  /** Each service's current process id (undefined while it is down). */
  pids(): Record<string, number | undefined>;
  /** SIGTERM to every service still running, the gateway first and accounts-data (which may own the embedded
   * PostgreSQL) last, SIGKILL after `graceMs`; resolves once all have exited. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL to every process still running, at once (for `process.on('exit')`, which cannot wait). */
  killAll(): void;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  /** Resolves with `performance.now()` when the service writes "listening on", rejects if it exits first. */
  listening: Promise<number>;
}

const BIN = new URL('../../bin/stratum.js', import.meta.url).pathname;
const READY_MS = 120_000;

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/**
 * The landscape's processes: started in order, each in a process group of its own (a Ctrl-C reaches the chaos
 * run only, which stops them in order), killed and restarted one at a time.
 * @example const landscape = createServiceLandscape({ specs, env: process.env, onLine: () => {}, graceMs: 15_000 });
 *          await landscape.start(); await landscape.kill('quotes-1'); await landscape.restart('quotes-1');
 */
export function createServiceLandscape(options: ServiceLandscapeOptions): ServiceLandscape {
  const { specs } = options;
  const url = (spec: ServiceSpec) => `http://127.0.0.1:${spec.port}`;
  const urlsOf = (role: ServiceRole) =>
    specs
      .filter((s) => s.role === role)
      .map(url)
      .join(',');
  const running = new Map<string, Running>();
  let stopping: Promise<void> | undefined;
  const specOf = (name: string) => {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new Error(`no service named ${name}`);
    return spec;
  };

  const spawnService = (spec: ServiceSpec): Running => {
    if (stopping) throw new Error(`not starting ${spec.name}: the landscape is stopping`);
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: {
        ...options.env,
        ROLE: spec.role,
        HOST: '127.0.0.1',
        PORT: String(spec.port),
        INSTANCE_NAME: spec.name,
        ACCOUNTS_DATA_URLS: urlsOf('accounts-data'),
        IMAGES_URLS: urlsOf('images'),
        QUOTES_URLS: urlsOf('quotes'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let heard: (at: number) => void = () => {};
    const listening = new Promise<number>((resolve, reject) => {
      heard = resolve;
      void exited.then(() => reject(new Error(`${spec.name} exited (${child.exitCode ?? child.signalCode})`)));
    });
    listening.catch(() => {});
    for (const stream of [child.stdout!, child.stderr!]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (line.includes('"listening on http')) heard(performance.now());
          options.onLine(spec.name, line);
        }
      });
    }
    const service = { child, exited, listening };
    running.set(spec.name, service);
    return service;
  };

  const ready = async (spec: ServiceSpec, service: Running) => {
    const until = Date.now() + READY_MS;
    while (Date.now() < until) {
      if (!alive(service.child))
        throw new Error(`${spec.name} exited (${service.child.exitCode ?? service.child.signalCode})`);
      const ok = await fetch(`${url(spec)}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      await sleep(200);
    }
    throw new Error(`${spec.name} was not ready within ${READY_MS / 1000} s`);
  };

  const stopOne = async (service: Running) => {
    if (!alive(service.child)) return;
    service.child.kill('SIGTERM');
    const timer = setTimeout(() => service.child.kill('SIGKILL'), options.graceMs);
    await service.exited;
    clearTimeout(timer);
  };

  return {
    url: (name) => url(specOf(name)),
    async start() {
      const data = specs.filter((s) => s.role === 'accounts-data');
      const gateways = specs.filter((s) => s.role === 'accounts');
      const others = specs.filter((s) => s.role === 'images' || s.role === 'quotes');
      // accounts-data migrates and may start the embedded server; images share it; the gateway needs them all.
      for (const group of [data, others, gateways])
        await Promise.all(group.map((spec) => ready(spec, spawnService(spec))));
    },
    async kill(name) {
      const service = running.get(name);
      if (!service || !alive(service.child)) throw new Error(`${name} is not running`);
      service.child.kill('SIGKILL');
      await service.exited;
      return service.child.pid!;
    },
    async restart(name) {
      const spec = specOf(name);
      const current = running.get(name);
      if (current && alive(current.child)) throw new Error(`${name} is still running`);
      const service = spawnService(spec);
      let timer: NodeJS.Timeout | undefined;
      try {
        const listeningAt = await Promise.race([
          service.listening,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${name} did not listen within ${READY_MS / 1000} s`)), READY_MS);
          }),
        ]);
        return { pid: service.child.pid!, listeningAt };
      } finally {
        clearTimeout(timer);
      }
    },
    pids: () =>
      Object.fromEntries(
        specs.map((s) => {
          const child = running.get(s.name)?.child;
          return [s.name, child && alive(child) ? child.pid : undefined];
        }),
      ),
    stop() {
      stopping ??= (async () => {
        for (const spec of [...specs].reverse()) {
          const service = running.get(spec.name);
          if (service) await stopOne(service);
        }
      })();
      return stopping;
    },
    killAll() {
      for (const { child } of running.values()) if (alive(child)) child.kill('SIGKILL');
    },
  };
}

/** Stops every service on SIGINT or SIGTERM (a second one SIGKILLs them), and SIGKILLs any left when we exit. */
export function guardProcesses(landscape: ServiceLandscape, say: (line: string) => void): () => void {
  let signalled = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signalled++;
    if (signalled > 1) {
      landscape.killAll();
      process.exit(130);
    }
    say(`chaos: ${signal}: stopping every service`);
    void landscape.stop().finally(() => process.exit(130));
  };
  const onExit = () => landscape.killAll();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.once('exit', onExit);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  };
}
