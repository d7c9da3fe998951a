import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDeployments } from './accounts/deployments.ts';
import { runLoad } from './accounts/load.ts';
import { parseAccountsOptions, type AccountsBenchOptions } from './accounts/options.ts';
import { formatResults, type TargetResult } from './accounts/report.ts';
import { checkTargets, defineTargets, type Target, type TargetKey } from './accounts/targets.ts';
import { cpuBetween, sampleCpu } from './support/cpu-time.ts';
import { collectGarbage } from './support/gc.ts';
import { interleave } from './support/schedule.ts';

const CONNECTIONS = 100;
/** Lets the server finish the last run's requests and close its sockets before the next run starts. */
const PAUSE_MS = 500;

/**
 * GET /accounts/:id throughput and latency at 100 connections, every target loaded in alternation (interleaved
 * rounds) from this process; see docs/benchmarks.md. In one server process: stratum with its cache, stratum
 * without (each also with one dashboard open), and a bare Fastify route. In a second one, started with
 * OTEL_SDK_DISABLED=true: stratum with its cache again (tracing holds for a whole process). Unless `--no-split`:
 * the split deployment (gateway, accounts-data, images, quotes ×2, each a `stratum serve` of its own), once with
 * tracing on and once with OTEL_SDK_DISABLED=true, its gateway loaded with the uncached target's ids. All on one
 * PostgreSQL and one seeded dataset; every process is stopped at the end, also on failure.
 * Prints markdown on stdout and progress on stderr.
 */
export async function runAccountsBench(argv: readonly string[]): Promise<void> {
  const options = parseAccountsOptions(argv);
  const started = performance.now();
  const deployments = await startDeployments(options, progress);
  try {
    const targets = defineTargets(deployments, options.rounds);
    await checkTargets(targets);
    const results = new Map<TargetKey, TargetResult>(
      targets.map((t) => [
        t.key,
        { target: t, runs: [], cpu: [], loads: t.readLoads ? 0 : undefined, warmUpDegraded: 0 },
      ]),
    );
    for (const target of targets) {
      const warmUp = await runLoad({
        url: target.url,
        nextPath: target.nextPath,
        seconds: options.warmUpSeconds,
        connections: CONNECTIONS,
      });
      results.get(target.key)!.warmUpDegraded = warmUp.degraded;
      progress(
        `warm-up ${target.key} (${options.warmUpSeconds} s): ${Math.round(warmUp.responses / warmUp.seconds)} req/s${
          warmUp.degraded > 0 ? ` -- ${warmUp.degraded} DEGRADED ANSWERS` : ''
        }`,
      );
      await sleep(PAUSE_MS);
    }
    const rounds = interleave(targets);
    for (const [r, round] of rounds.entries()) {
      for (const target of round) {
        await timedRun(target, results.get(target.key)!, options);
        const last = results.get(target.key)!.runs.at(-1)!;
        const non2xx = [...last.non2xx.values()].reduce((a, b) => a + b, 0);
        const failures =
          (last.errors + non2xx > 0 ? ` -- FAILED REQUESTS: ${last.errors} errors, ${non2xx} non-2xx` : '') +
          (last.degraded > 0 ? ` -- ${last.degraded} DEGRADED ANSWERS` : '');
        progress(
          `round ${r + 1}/${rounds.length}: ${target.key} ${Math.round(last.responses / last.seconds)} req/s${failures}`,
        );
        await sleep(PAUSE_MS);
      }
    }
    console.log([heading(options), formatResults([...results.values()])].join('\n'));
  } finally {
    await deployments.stop();
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

/** One timed run of one target, with the CPU it took and, for stratum, how many reads reached PostgreSQL. */
async function timedRun(target: Target, result: TargetResult, options: AccountsBenchOptions): Promise<void> {
  const loadsBefore = (await target.readLoads?.()) ?? 0;
  collectGarbage();
  const before = sampleCpu(target.serverPids);
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
  result.cpu.push(cpuBetween(before, sampleCpu(target.serverPids)));
  if (target.readLoads) result.loads! += (await target.readLoads()) - loadsBefore;
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
    `## GET /accounts/:id: stratum cached and uncached beside a bare Fastify route${options.split ? ', the split deployment' : ''}, tracing on and off`,
    '',
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, Node ${process.version}, PostgreSQL ${database}`,
    '',
    `autocannon in the benchmark process, ${CONNECTIONS} connections, no pipelining, against one server process holding bare, cached and uncached ` +
      '(tracing on), one more holding cached with OTEL_SDK_DISABLED=true' +
      `${options.split ? ', and the split deployment twice (5 processes each: tracing on; OTEL_SDK_DISABLED=true)' : ' (split deployment skipped: --no-split)'}, all on one database; ` +
      `${options.warmUpSeconds} s warm-up each, then ${options.rounds} rounds of ${options.durationSeconds} s per target, the order rotating each round. ` +
      'req/s is the mean over the rounds (all responses over all seconds); p50 and p99 are over every 2xx response of all rounds.',
    '',
  ].join('\n');
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
