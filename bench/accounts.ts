import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { readCacheLoads } from './accounts/cache-loads.ts';
import { runLoad } from './accounts/load.ts';
import { parseAccountsOptions, type AccountsBenchOptions } from './accounts/options.ts';
import { formatResults, type TargetResult } from './accounts/report.ts';
import { spawnBenchServers } from './accounts/spawn-servers.ts';
import { checkTargets, defineTargets, type Target, type TargetKey } from './accounts/targets.ts';
import { cpuBetween, sampleCpu } from './support/cpu-time.ts';
import { collectGarbage } from './support/gc.ts';
import { interleave } from './support/schedule.ts';

const CONNECTIONS = 100;
/** Lets the server finish the last run's requests and close its sockets before the next run starts. */
const PAUSE_MS = 500;

/**
 * GET /accounts/:id throughput and latency at 100 connections: stratum with its cache, stratum without (each also
 * with one dashboard open), and a bare Fastify route, all in one server process, loaded in alternation from this
 * one; see docs/benchmarks.md.
 * Prints markdown on stdout and progress on stderr.
 */
export async function runAccountsBench(argv: readonly string[]): Promise<void> {
  const options = parseAccountsOptions(argv);
  const started = performance.now();
  progress('starting the server process: PostgreSQL, seeding, two stratum instances, bare Fastify');
  const servers = await spawnBenchServers();
  try {
    const targets = defineTargets(servers.ports, options.rounds);
    await checkTargets(targets);
    for (const target of targets) {
      progress(`warm-up ${target.key} (${options.warmUpSeconds} s)`);
      await runLoad({
        url: target.url,
        nextPath: target.nextPath,
        seconds: options.warmUpSeconds,
        connections: CONNECTIONS,
      });
      await sleep(PAUSE_MS);
    }
    const results = new Map<TargetKey, TargetResult>(
      targets.map((t) => [t.key, { target: t, runs: [], cpu: [], loads: t.stratum ? 0 : undefined }]),
    );
    const rounds = interleave(targets);
    for (const [r, round] of rounds.entries()) {
      for (const target of round) {
        await timedRun(target, results.get(target.key)!, servers.pid, options);
        const last = results.get(target.key)!.runs.at(-1)!;
        const non2xx = [...last.non2xx.values()].reduce((a, b) => a + b, 0);
        const failures =
          last.errors + non2xx > 0 ? ` -- FAILED REQUESTS: ${last.errors} errors, ${non2xx} non-2xx` : '';
        progress(
          `round ${r + 1}/${rounds.length}: ${target.key} ${Math.round(last.responses / last.seconds)} req/s${failures}`,
        );
        await sleep(PAUSE_MS);
      }
    }
    console.log([heading(options), formatResults([...results.values()])].join('\n'));
  } finally {
    await servers.stop();
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

/** One timed run of one target, with the CPU it took and, for stratum, how many reads reached PostgreSQL. */
async function timedRun(
  target: Target,
  result: TargetResult,
  serverPid: number,
  options: AccountsBenchOptions,
): Promise<void> {
  const loadsBefore = target.stratum ? await readCacheLoads(target.url) : 0;
  collectGarbage();
  const before = sampleCpu(serverPid);
  const dashboard = target.dashboard ? await openDashboard(target.url) : undefined;
  try {
    result.runs.push(
      await runLoad({
        url: target.url,
        nextPath: target.nextPath,
        seconds: options.durationSeconds,
        connections: CONNECTIONS,
      }),
    );
  } finally {
    await dashboard?.close();
  }
  result.cpu.push(cpuBetween(before, sampleCpu(serverPid)));
  if (target.stratum) result.loads! += (await readCacheLoads(target.url)) - loadsBefore;
}

/**
 * What one open dashboard asks of the server: the page and its assets, then its data once a second (the
 * page's own polling, without a browser's rendering on this 2-core machine). Fails the run if any answer is not 200.
 */
async function openDashboard(url: string): Promise<{ close(): Promise<void> }> {
  const get = async (path: string) => {
    const response = await fetch(`${url}${path}`);
    const body = await response.text();
    if (response.status !== 200)
      throw new Error(`dashboard: GET ${path} answered ${response.status} ${body.slice(0, 200)}`);
    return body;
  };
  await get('/dashboard');
  for (const asset of ['uplot.js', 'uplot.css', 'dashboard.js', 'dashboard.css'])
    await get(`/dashboard/assets/${asset}`);
  let after = 0;
  let failure: unknown;
  const poll = async () => {
    try {
      const body = JSON.parse(await get(`/dashboard/api/samples?after=${after}`)) as { samples: Array<{ t: number }> };
      after = body.samples.at(-1)?.t ?? after;
    } catch (error) {
      failure ??= error;
    }
  };
  await poll();
  let polling = Promise.resolve();
  const timer = setInterval(() => {
    polling = polling.then(poll);
  }, 1000);
  return {
    async close() {
      clearInterval(timer);
      await polling;
      if (failure) throw failure;
    },
  };
}

function heading(options: AccountsBenchOptions): string {
  const cpus = os.cpus();
  const database = process.env.DATABASE_URL?.trim() ? 'DATABASE_URL' : 'embedded, .stratum-bench-accounts';
  return [
    '## GET /accounts/:id: stratum cached and uncached beside a bare Fastify route',
    '',
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, Node ${process.version}, PostgreSQL ${database}`,
    '',
    `autocannon in the benchmark process, ${CONNECTIONS} connections, no pipelining, against one server process holding all three targets; ` +
      `${options.warmUpSeconds} s warm-up each, then ${options.rounds} rounds of ${options.durationSeconds} s per target, the order rotating each round. ` +
      'req/s is the mean over the rounds (all responses over all seconds); p50 and p99 are over every 2xx response of all rounds.',
    '',
  ].join('\n');
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
