import { performance } from 'node:perf_hooks';
import type { RunningServer } from '../../src/app/server.ts';
import { compactScores, scoreLogStatus } from '../../src/contexts/users/deferred-scores.ts';
import { createPool, type Sql } from '../../src/platform/db/connect.ts';
import { cpuBetween, sampleCpu } from '../support/cpu-time.ts';
import type { BenchServer } from '../support/database.ts';
import { collectGarbage } from '../support/gc.ts';
import { summarize } from '../support/stats.ts';
import { seedScore, seedUsersByCopy } from './copy-seed.ts';
import { runCreationLoad } from './creation-load.ts';
import { checkScores, comparePages, eagerScores } from './eager-oracle.ts';
import { usersClient, type CreationInput, type ListedUser, type UsersClient } from './http-client.ts';
import type { CheckResult, ModeResult, ModesSizeResults } from './modes-report.ts';
import { eagerConcurrency, eagerSamples, type BenchMode, type UsersBenchOptions } from './options.ts';
import { startStratum } from './stratum-http.ts';

/** Creations made in every mode, in the same order with the same input, before anything is timed. */
const PREFIX_CREATIONS = 3;
/** Untimed creations of each mode before its timed ones: up to 20, fewer once 2 s have gone by. */
const WARM_UP_CREATIONS = 20;
const WARM_UP_MS = 2000;
const WARM_UP_READS = 20;
const PAGE = 100;

interface ModeRun {
  mode: BenchMode;
  database: string;
  url: string;
  /** The benchmark's own connections to the mode's database (seeding, checks, ANALYZE). */
  sql: Sql;
  stratum?: RunningServer;
  client?: UsersClient;
  result: ModeResult;
}

/** Scores POSTed for new users: a few exact decimals, so created users start from different scores too. */
const CREATION_SCORES = [0, 1.25, 2.5, 10, 0.001];

/**
 * One size: a database per mode seeded alike by COPY, a stratum server per mode (SCORE_MODE set, background
 * compaction off), then in turn: the same few creations in every mode, compared page by page; creations one at a
 * time; a concurrent creation load; GET /users pages at random cursors (modes interleaved); the scores of sampled
 * pages against the eager mode's arithmetic; for deferred, compaction of the whole log, the sample again and the
 * reads again. The databases are dropped at the end.
 */
export async function benchModesAtSize(
  server: BenchServer,
  size: number,
  options: UsersBenchOptions,
  progress: (line: string) => void,
): Promise<ModesSizeResults> {
  const random = mulberry32(size);
  const starts = new Map<string, number>();
  let seq = 0;
  const nextInput = (prefix: string): CreationInput => {
    seq += 1;
    const score = CREATION_SCORES[seq % CREATION_SCORES.length]!;
    const input = { username: `${prefix}-${seq}`, score, firstname: 'Bench', lastname: `Mark ${seq}` };
    starts.set(input.username, score);
    return input;
  };
  const startOf = (user: ListedUser): string => {
    if (user.id <= size) return seedScore(user.id);
    const start = starts.get(user.username);
    if (start === undefined) throw new Error(`user ${user.id} (${user.username}) was not created by the benchmark`);
    return String(start);
  };
  const checks: CheckResult[] = [];
  const runs: ModeRun[] = [];
  const log = (run: ModeRun, line: string) => progress(`${size} users, ${label(run.mode)}: ${line}`);
  try {
    for (const mode of options.modes) {
      const database = `stratum_bench_${mode}_${size}`;
      // A shard a failed run left behind belongs to another catalog: stratum would refuse to start on it.
      await server.dropDatabase(`${database}_orders_0`);
      const url = await server.createDatabase(database);
      const sql = createPool({ url }, { max: 2, applicationName: 'stratum-bench', idleTimeoutSeconds: 3600 });
      const run: ModeRun = { mode, database, url, sql, result: emptyResult(mode) };
      runs.push(run);
      log(run, 'seeding by COPY');
      const t0 = performance.now();
      await seedUsersByCopy(sql, size);
      log(run, `seeded, vacuumed and analyzed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    for (const run of runs) {
      run.stratum = await startStratum(run.url, server.owned, {
        SCORE_MODE: run.mode,
        SCORE_COMPACTION_INTERVAL_MS: '0',
        ORDERS_SHARD_COUNT: '1',
      });
      run.client = usersClient(run.stratum.url, options.concurrency);
    }

    // The same creations in every mode on identical seeds, then the same pages from each, compared.
    progress(`${size} users: ${PREFIX_CREATIONS} identical creations in each mode`);
    for (let i = 0; i < PREFIX_CREATIONS; i++) {
      const input = nextInput('same');
      for (const run of runs) await run.client!.create(input);
    }
    const prefixPages = [0, Math.floor(random() * (size - PAGE)), size + PREFIX_CREATIONS - PAGE];
    const prefixListed = await Promise.all(runs.map((run) => readPages(run.client!, prefixPages)));
    for (const [r, run] of runs.entries()) {
      const expected = await eagerScores(run.sql, size, prefixListed[r]!, startOf);
      checks.push({
        what: `${label(run.mode)} after the ${PREFIX_CREATIONS} identical creations, against the eager arithmetic`,
        check: checkScores(prefixListed[r]!, expected),
      });
    }
    if (runs.length === 2)
      checks.push({
        what: `the ${PREFIX_CREATIONS} identical creations on identical seeds: ${prefixPages.length} pages of GET /users from both modes`,
        check: comparePages(prefixListed[0]!, prefixListed[1]!),
      });

    // Creations one at a time, mode after mode.
    for (const run of runs) {
      const samples = run.mode === 'sync' ? eagerSamples(size, options.samples) : options.samples;
      await settle(run);
      const warmStarted = performance.now();
      for (let i = 0; i < WARM_UP_CREATIONS && (i === 0 || performance.now() - warmStarted < WARM_UP_MS); i++)
        await run.client!.create(nextInput(run.mode));
      log(run, `${samples} creations one at a time`);
      const timings: number[] = [];
      let reported = performance.now();
      collectGarbage();
      for (let i = 0; i < samples; i++) {
        timings.push((await run.client!.create(nextInput(run.mode))).ms);
        if (performance.now() - reported > 10_000 || i === samples - 1) {
          log(run, `${i + 1}/${samples} one at a time, last ${timings.at(-1)!.toFixed(1)} ms`);
          reported = performance.now();
        }
      }
      run.result.single = summarize(timings);
    }

    // The concurrent load, mode after mode.
    for (const run of runs) {
      const concurrency = run.mode === 'sync' ? eagerConcurrency(size, options.concurrency) : options.concurrency;
      await settle(run);
      collectGarbage();
      log(run, `creation load: ${concurrency} in flight for ${options.seconds} s`);
      const cpuBefore = sampleCpu([]);
      const load = await runCreationLoad(run.client!, {
        concurrency,
        seconds: options.seconds,
        next: () => nextInput(`${run.mode}-load`),
      });
      const cpu = cpuBetween(cpuBefore, sampleCpu([]));
      run.result.load = {
        concurrency,
        created: load.created,
        seconds: load.seconds,
        latency: load.latenciesMs.length > 0 ? summarize(load.latenciesMs) : undefined,
        failures: load.failures,
        cpu: { node: cpu.self, machine: cpu.machine },
      };
      log(
        run,
        `${load.created} created in ${load.seconds.toFixed(1)} s: ${(load.created / load.seconds).toFixed(1)}/s`,
      );
    }

    for (const run of runs) {
      await settle(run);
      run.result.creations =
        Number((await run.sql<[{ n: string }]>`select count(*) as n from users.users`)[0].n) - size;
    }
    const reads = await timedReads(runs, options.reads, random, progress, `${size} users`);
    for (const [r, run] of runs.entries()) run.result.reads = reads[r]!;

    // The scores of sampled pages against the eager mode's arithmetic, in every mode after all its creations.
    const samplePages = new Map<ModeRun, number[]>();
    for (const run of runs) {
      const last = size + run.result.creations;
      const pages = [0, Math.floor(random() * (size - PAGE)), size - PAGE / 2, Math.max(0, last - PAGE)];
      if (run.result.creations > 2 * PAGE)
        pages.splice(3, 0, size + Math.floor(random() * (run.result.creations - PAGE)));
      samplePages.set(run, pages);
      const listed = await readPages(run.client!, pages);
      log(run, `checking ${listed.length} users' scores against the eager arithmetic`);
      const t0 = performance.now();
      const expected = await eagerScores(run.sql, size, listed, startOf);
      log(run, `recomputed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      checks.push({
        what: `${label(run.mode)} after its ${run.result.creations} creations${run.mode === 'deferred' ? ', log not compacted' : ''}: ${pages.length} pages of GET /users against the eager arithmetic`,
        check: checkScores(listed, expected),
      });

      if (run.mode !== 'deferred') continue;
      const before = await scoreLogStatus(run.sql);
      const compactionPool = createPool(
        { url: run.url },
        {
          max: 2,
          applicationName: 'stratum-bench-compaction',
          connectTimeoutSeconds: 5,
          statementTimeoutMs: 120_000,
          acquireWaitMs: 10_000,
        },
      );
      try {
        log(run, `compacting a log of ${before.lag} creations into ${last} users`);
        let reported = performance.now();
        const c0 = performance.now();
        const outcome = await compactScores(compactionPool, {
          onProgress: (p) => {
            if (performance.now() - reported < 5000) return;
            reported = performance.now();
            log(run, `compaction: through id ${p.doneThroughId} of ${p.lastId}, ${p.moved} moved`);
          },
        });
        const seconds = (performance.now() - c0) / 1000;
        if (outcome.outcome !== 'compacted') throw new Error(`compaction did not run: ${JSON.stringify(outcome)}`);
        const after = await scoreLogStatus(run.sql);
        if (after.lag !== 0) throw new Error(`after compaction the log still holds ${after.lag} creations`);
        run.result.compaction = {
          creations: before.lag,
          users: last,
          seconds,
          batches: outcome.batches,
          moved: outcome.moved,
        };
        log(run, `compacted in ${seconds.toFixed(1)} s (${outcome.batches} batches, ${outcome.moved} users moved)`);
      } finally {
        await compactionPool.end({ timeout: 5 });
      }
      const relisted = await readPages(run.client!, pages);
      checks.push({
        what: `${label(run.mode)} after compaction: the same ${pages.length} pages against the eager arithmetic`,
        check: checkScores(relisted, expected),
      });
      checks.push({
        what: `${label(run.mode)}: the same ${pages.length} pages before and after compaction`,
        check: comparePages(listed, relisted),
      });
    }

    if (runs.some((run) => run.result.compaction)) {
      for (const run of runs) await settle(run);
      const after = await timedReads(runs, options.reads, random, progress, `${size} users, after compaction`);
      for (const [r, run] of runs.entries()) run.result.readsAfterCompaction = after[r];
    }
    return { size, results: runs.map((run) => run.result), checks };
  } finally {
    for (const run of runs) {
      await run.client?.close();
      await run.stratum?.stop();
      await run.sql.end({ timeout: 5 });
      await server.dropDatabase(run.database);
      await server.dropDatabase(`${run.database}_orders_0`);
    }
  }
}

const label = (mode: BenchMode) => (mode === 'sync' ? 'eager (sync)' : 'deferred');

function emptyResult(mode: BenchMode): ModeResult {
  const none = { samples: 0, medianMs: Number.NaN, p99Ms: Number.NaN };
  return {
    mode,
    single: none,
    load: { concurrency: 0, created: 0, seconds: 0, latency: undefined, failures: new Map(), cpu: undefined },
    reads: none,
    readsAfterCompaction: undefined,
    compaction: undefined,
    creations: 0,
  };
}

async function readPages(client: UsersClient, afterIds: readonly number[]): Promise<ListedUser[]> {
  const listed: ListedUser[] = [];
  for (const afterId of afterIds) listed.push(...(await client.page(afterId, PAGE)).items);
  return listed;
}

/**
 * GET /users?limit=100 at random cursors, the modes interleaved request by request (the order rotating), each
 * mode at the same relative place of its own table.
 */
async function timedReads(
  runs: readonly ModeRun[],
  count: number,
  random: () => number,
  progress: (line: string) => void,
  what: string,
) {
  const lastIds = await Promise.all(
    runs.map(async (run) => (await run.sql<[{ last: number }]>`select max(id)::int as last from users.users`)[0].last),
  );
  const afterId = (r: number, u: number) => Math.floor(u * (lastIds[r]! - PAGE));
  for (let i = 0; i < WARM_UP_READS; i++) {
    const u = random();
    for (const [r, run] of runs.entries()) await run.client!.page(afterId(r, u), PAGE);
  }
  collectGarbage();
  progress(`${what}: ${count} GET /users?limit=${PAGE} per mode at random cursors, interleaved`);
  const timings: number[][] = runs.map(() => []);
  for (let i = 0; i < count; i++) {
    const u = random();
    for (let k = 0; k < runs.length; k++) {
      const r = (i + k) % runs.length;
      const { items, ms } = await runs[r]!.client!.page(afterId(r, u), PAGE);
      if (items.length !== PAGE) throw new Error(`GET /users gave ${items.length} users, not ${PAGE}`);
      timings[r]!.push(ms);
    }
  }
  return timings.map((t) => summarize(t));
}

/**
 * Before a timed phase: VACUUM ANALYZE of the users tables and the score log (autovacuum is off on them, and an
 * eager creation leaves every other row dead behind it), then a CHECKPOINT, so the writes of the last phase are
 * not flushed during this one (skipped where the role may not).
 */
async function settle(run: ModeRun): Promise<void> {
  await run.sql.unsafe('vacuum analyze users.users, users.user_profile, users.actions, users.score_log');
  await run.sql`checkpoint`.catch(() => undefined);
}

/** A small seeded PRNG: the same cursors and sample pages on every run of a size. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
