import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool, type Sql } from '../../src/platform/db/connect.ts';
import { cpuBetween, sampleCpu, type CpuSample } from '../support/cpu-time.ts';
import type { BenchServer } from '../support/database.ts';
import { collectGarbage } from '../support/gc.ts';
import { interleave } from '../support/schedule.ts';
import { runCreateLoad, type CreateRun } from './create-load.ts';
import { databaseUrl } from './database-url.ts';
import { findPostgresCpu, type PostgresCpu, type PostgresCpuSample } from './postgres-cpu.ts';
import { startStratumServer, type StratumServer } from './stratum-server.ts';

export const WRITE_SHARD_COUNTS = [1, 2, 4] as const;

/** Create-order runs of one shard count. */
export interface WriteResult {
  shardCount: number;
  runs: CreateRun[];
  /** Where the CPU went during each timed run. */
  cpu: RunCpu[];
  /** Seconds the shards' outbox relays needed after each run to forward what it wrote. */
  drainSeconds: number[];
  /** 201 answers of the warm-up and the timed runs. */
  createdAnswers: number;
  /** Orders found on each shard afterwards. */
  ordersOnShards: number[];
}

/** Percent of one core, except `machine`: percent of all cores. Undefined where it could not be measured. */
export interface RunCpu {
  server: number | undefined;
  loadGenerator: number;
  postgres: number | undefined;
  /** What the machine did besides these three (other people's work on a shared machine). */
  others: number | undefined;
  machine: number;
}

const catalogName = (shards: number) => `stratum_bench_shards_write_${shards}`;
const WARM_UP_SECONDS = 3;
/** Lets the server finish the last run's requests and close its sockets before the next run starts. */
const PAUSE_MS = 500;
const DRAIN_TIMEOUT_MS = 120_000;

/**
 * Creates an empty catalog database per shard count (dropping an earlier run's, and its shard databases) and
 * returns their URLs; stratum creates and migrates the shard databases when it starts.
 */
export async function prepareWriteDatabases(server: BenchServer): Promise<Map<number, string>> {
  const urls = new Map<number, string>();
  for (const n of WRITE_SHARD_COUNTS) {
    for (let i = 0; i < n; i++) await server.dropDatabase(`${catalogName(n)}_orders_${i}`);
    urls.set(n, await server.createDatabase(catalogName(n)));
  }
  return urls;
}

export async function dropWriteDatabases(server: BenchServer): Promise<void> {
  for (const n of WRITE_SHARD_COUNTS) {
    for (let i = 0; i < n; i++) await server.dropDatabase(`${catalogName(n)}_orders_${i}`);
    await server.dropDatabase(catalogName(n));
  }
}

/**
 * POST /orders throughput with 1, 2 and 4 shards: one stratum server process per shard count, all started
 * up front over their own fresh databases, a warm-up each, then `rounds` timed runs each, interleaved with
 * the order rotating. After each run the relays forward what it wrote before the next run starts, so one
 * run's background work does not land on another's time. Afterwards every shard's orders are counted and
 * checked against the 201 answers.
 */
export async function benchCreates(
  urls: Map<number, string>,
  options: { connections: number; seconds: number; rounds: number },
  progress: (line: string) => void,
): Promise<WriteResult[]> {
  const servers: StratumServer[] = [];
  const shardSql = new Map<number, Sql[]>();
  try {
    for (const n of WRITE_SHARD_COUNTS) {
      progress(`starting stratum with ${n} shard(s)`);
      servers.push(await startStratumServer(urls.get(n)!, n));
      shardSql.set(
        n,
        Array.from({ length: n }, (_, i) =>
          createPool(
            { url: databaseUrl(urls.get(n)!, `${catalogName(n)}_orders_${i}`) },
            {
              max: 1,
              applicationName: 'stratum-bench-shards',
              idleTimeoutSeconds: 3600,
            },
          ),
        ),
      );
    }
    const results = new Map<number, WriteResult>(
      WRITE_SHARD_COUNTS.map((n) => [
        n,
        { shardCount: n, runs: [], cpu: [], drainSeconds: [], createdAnswers: 0, ordersOnShards: [] },
      ]),
    );
    for (const server of servers) {
      progress(`${server.shardCount} shard(s): warm-up ${WARM_UP_SECONDS} s`);
      const warmUp = await runCreateLoad({
        baseUrl: server.baseUrl,
        connections: options.connections,
        seconds: WARM_UP_SECONDS,
      });
      if (warmUp.created === 0)
        throw new Error(
          `stratum with ${server.shardCount} shard(s) created no order in the warm-up (${describeFailures(warmUp)})`,
        );
      results.get(server.shardCount)!.createdAnswers += warmUp.created;
      if (server.relays) await drain(shardSql.get(server.shardCount)!);
      await sleep(PAUSE_MS);
    }
    const postgres = await findPostgresCpu(shardSql.get(1)![0]!);
    const plan = servers.map((server) => ({ server, samples: options.rounds }));
    for (const [r, round] of interleave(plan).entries()) {
      for (const { server } of round) {
        const result = results.get(server.shardCount)!;
        collectGarbage();
        const before = { process: sampleCpu(server.pid), postgres: postgres?.sample() };
        const run = await runCreateLoad({
          baseUrl: server.baseUrl,
          connections: options.connections,
          seconds: options.seconds,
        });
        result.cpu.push(cpuOfRun(before, { process: sampleCpu(server.pid), postgres: postgres?.sample() }, postgres));
        result.runs.push(run);
        result.createdAnswers += run.created;
        if (server.relays) result.drainSeconds.push(await drain(shardSql.get(server.shardCount)!));
        const failures = describeFailures(run);
        progress(
          `round ${r + 1}/${options.rounds}: ${server.shardCount} shard(s) ${Math.round(run.created / run.seconds)} orders/s, ` +
            `CPU: server ${Math.round(result.cpu.at(-1)!.server ?? Number.NaN)}%, PostgreSQL ${Math.round(result.cpu.at(-1)!.postgres ?? Number.NaN)}%, ` +
            `others ${Math.round(result.cpu.at(-1)!.others ?? Number.NaN)}% of a core, ` +
            (server.relays ? `relays drained in ${result.drainSeconds.at(-1)!.toFixed(1)} s` : 'no relays (ROLE=api)') +
            (failures ? ` -- ${failures}` : ''),
        );
        await sleep(PAUSE_MS);
      }
    }
    for (const n of WRITE_SHARD_COUNTS) {
      const result = results.get(n)!;
      result.ordersOnShards = await Promise.all(
        shardSql
          .get(n)!
          .map(async (sql) => (await sql<{ n: number }[]>`select count(*)::int as n from orders.orders`)[0]!.n),
      );
      const found = result.ordersOnShards.reduce((a, b) => a + b, 0);
      if (found < result.createdAnswers)
        throw new Error(
          `${n} shard(s): ${result.createdAnswers} orders were answered 201 but only ${found} are on the shards`,
        );
      // A run can end with a request per connection sent but its answer not counted; more than that is an order too many.
      const unanswered = options.connections * (result.runs.length + 1);
      if (found > result.createdAnswers + unanswered)
        throw new Error(
          `${n} shard(s): ${found} orders on the shards for ${result.createdAnswers} answered 201 (at most ${unanswered} unanswered)`,
        );
    }
    return [...results.values()];
  } finally {
    for (const pools of shardSql.values()) await Promise.all(pools.map((sql) => sql.end({ timeout: 5 })));
    for (const server of servers) await server.stop();
  }
}

type RunSample = { process: CpuSample; postgres: PostgresCpuSample | undefined };

function cpuOfRun(a: RunSample, b: RunSample, pg: PostgresCpu | undefined): RunCpu {
  const { self, other, machine } = cpuBetween(a.process, b.process);
  const postgres =
    pg && a.postgres && b.postgres
      ? (100 * pg.between(a.postgres, b.postgres)) / (b.process.wallMs - a.process.wallMs)
      : undefined;
  const others =
    other === undefined || postgres === undefined
      ? undefined
      : Math.max(0, machine * os.cpus().length - self - other - postgres);
  return { server: other, loadGenerator: self, postgres, others, machine };
}

/** Waits until the shards' outboxes hold no unsent event; returns the seconds it took. */
async function drain(shards: Sql[]): Promise<number> {
  const started = Date.now();
  for (;;) {
    const unsent = await Promise.all(
      shards.map(
        async (sql) =>
          (await sql<{ n: number }[]>`select count(*)::int as n from messaging.outbox where sent_at is null`)[0]!.n,
      ),
    );
    if (unsent.every((n) => n === 0)) return (Date.now() - started) / 1000;
    if (Date.now() - started > DRAIN_TIMEOUT_MS)
      throw new Error(`the relays left ${unsent.join(' + ')} events unsent for ${DRAIN_TIMEOUT_MS / 1000} s`);
    await sleep(100);
  }
}

export function describeFailures(run: CreateRun): string {
  const rejected = [...run.rejected.entries()].map(([status, n]) => `${n} x ${status}`);
  return [...(run.errors > 0 ? [`${run.errors} connection errors or timeouts`] : []), ...rejected].join(', ');
}
