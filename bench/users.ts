import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { RunningServer } from '../src/app/server.ts';
import { createPool, type Sql } from '../src/platform/db/connect.ts';
import { openBenchServer, type BenchServer } from './support/database.ts';
import { collectGarbage } from './support/gc.ts';
import { interleave } from './support/schedule.ts';
import { summarize } from './support/stats.ts';
import { awaitedPerUser, pipelinedPerUser, setBasedSql } from './users/baselines.ts';
import { resetUsers, scoreTotal, seedUsers, verifyCreation } from './users/dataset.ts';
import type { CreationMethod, NewUserInput } from './users/method.ts';
import { benchModesAtSize } from './users/modes.ts';
import { failedChecks, formatModesSummary, formatModesSize, type ModesSizeResults } from './users/modes-report.ts';
import { baselineSamples, parseUsersOptions, type UsersBenchOptions } from './users/options.ts';
import { formatSize, type SizeResults } from './users/report.ts';
import { startStratum, stratumOverHttp } from './users/stratum-http.ts';

/**
 * By default SCORE_MODE=deferred next to the eager mode (SCORE_MODE=sync) at each size; with `--baselines`
 * POST /users latency at each size next to three baselines. See docs/benchmarks.md. Prints markdown on stdout
 * and progress on stderr.
 */
export async function runUsersBench(argv: readonly string[]): Promise<void> {
  const options = parseUsersOptions(argv);
  const started = performance.now();
  const server = await openBenchServer(process.env);
  try {
    if (options.suite === 'baselines') {
      console.log(heading(server));
      for (const size of options.sizes) console.log(formatSize(await benchSize(server, size, options.samples)));
    } else {
      await runModes(server, options);
    }
  } finally {
    await server.close();
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

/** The mode comparison, size by size; fails after the report when a correctness check failed. */
async function runModes(server: BenchServer, options: UsersBenchOptions): Promise<void> {
  console.log(modesHeading(server, options));
  const all: ModesSizeResults[] = [];
  for (const size of options.sizes) {
    const result = await benchModesAtSize(server, size, options, progress);
    all.push(result);
    console.log(formatModesSize(result));
  }
  console.log(formatModesSummary(all));
  const failed = failedChecks(all);
  if (failed.length > 0) throw new Error(`scores differ from the eager mode's:\n${failed.join('\n')}`);
}

interface Planned {
  key: Exclude<keyof SizeResults, 'size'>;
  method: CreationMethod;
  samples: number;
  timings: number[];
}

/** One size in a database of its own: seed, warm up each method, then the timed rounds, interleaved. */
async function benchSize(server: BenchServer, size: number, samples: number): Promise<SizeResults> {
  const database = `stratum_bench_${size}`;
  const url = await server.createDatabase(database);
  const sql = createPool({ url }, { max: 1, applicationName: 'stratum-bench', idleTimeoutSeconds: 3600 });
  let stratum: RunningServer | undefined;
  let seq = 0;
  const nextUser = (): NewUserInput => ({
    username: `bench-${size}-${++seq}`,
    firstname: 'Bench',
    lastname: `Mark ${seq}`,
  });
  try {
    progress(`${size} users: seeding`);
    await seedUsers(sql, size);
    stratum = await startStratum(url, server.owned);
    const plan: Planned[] = [
      { key: 'stratum', method: stratumOverHttp(stratum.url), samples, timings: [] },
      { key: 'setBased', method: setBasedSql(sql), samples, timings: [] },
      { key: 'pipelined', method: pipelinedPerUser(sql), samples: baselineSamples(size, samples), timings: [] },
      { key: 'awaited', method: awaitedPerUser(sql), samples: baselineSamples(size, samples), timings: [] },
    ];
    for (const p of plan) {
      progress(`${size} users: warm-up ${p.method.name}`);
      await warmUp(sql, size, p.method, nextUser);
    }
    const rounds = interleave(plan);
    for (const [r, round] of rounds.entries()) {
      for (const p of round) {
        await resetUsers(sql, size);
        collectGarbage();
        const t0 = performance.now();
        await p.method.create(nextUser());
        p.timings.push(performance.now() - t0);
      }
      progress(
        `${size} users: round ${r + 1}/${rounds.length}: ${round.map((p) => `${p.key} ${p.timings.at(-1)!.toFixed(1)} ms`).join(', ')}`,
      );
    }
    const result = (key: Planned['key']) => {
      const p = plan.find((x) => x.key === key)!;
      return { name: p.method.name, summary: summarize(p.timings) };
    };
    return {
      size,
      stratum: result('stratum'),
      setBased: result('setBased'),
      pipelined: result('pipelined'),
      awaited: result('awaited'),
    };
  } finally {
    await stratum?.stop();
    await sql.end({ timeout: 5 });
    await server.dropDatabase(database);
    // stratum creates its orders shards (4 by default) beside the database it is given.
    for (let i = 0; i < 4; i++) await server.dropDatabase(`${database}_orders_${i}`);
  }
}

const WARM_UP_CREATIONS = 5;
const WARM_UP_MS = 2000;

/**
 * Untimed creations before the timed rounds: they open connections, prepare statements, let V8 optimise the
 * HTTP and driver code, and bring the table to the shape every timed creation starts from (vacuumed after a
 * fan-out). The first one is checked: the method must have done all the work. Up to 5, or fewer past 2 s.
 */
async function warmUp(sql: Sql, size: number, method: CreationMethod, nextUser: () => NewUserInput): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < WARM_UP_CREATIONS && (i === 0 || performance.now() - started < WARM_UP_MS); i++) {
    await resetUsers(sql, size);
    const before = i === 0 ? await scoreTotal(sql) : undefined;
    await method.create(nextUser());
    if (before) await verifyCreation(sql, size, before);
  }
}

function machine(server: BenchServer): string[] {
  const cpus = os.cpus();
  return [
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, ` +
      `Node ${process.version}, PostgreSQL ${server.version} (${server.source})`,
    '',
  ];
}

function heading(server: BenchServer): string {
  return [
    "## POST /users: creating a user while every other user's score moves",
    '',
    ...machine(server),
    'Milliseconds per creation, one at a time; p99 is nearest rank, so with fewer than 100 samples it is the slowest one.',
    '',
  ].join('\n');
}

function modesHeading(server: BenchServer, options: UsersBenchOptions): string {
  return [
    '## POST /users: SCORE_MODE=deferred against eager',
    '',
    ...machine(server),
    `options: --modes ${options.modes.join(',')} --sizes ${options.sizes.join(',')} --samples ${options.samples} ` +
      `--seconds ${options.seconds} --concurrency ${options.concurrency} --reads ${options.reads}`,
    '',
    'Each mode on a database of its own, seeded alike by COPY, behind a stratum server of its own over HTTP ' +
      '(SCORE_COMPACTION_INTERVAL_MS=0: compaction is timed on its own). Milliseconds, client side, until the ' +
      'body is in; p99 is nearest rank, so with fewer than 100 samples it is the slowest one. The creation load ' +
      'is closed-model: so many creations in flight, each sent when the last one of its slot is answered.',
    '',
  ].join('\n');
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
