import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createPool, type Sql } from '../src/platform/db/connect.ts';
import { writeCsvFiles, type CsvFiles } from './import/csv-files.ts';
import type { ImportMethod } from './import/method.ts';
import { multiRowInserts } from './import/multi-row-insert.ts';
import { BENCH_IMPORT_HOME, parseImportOptions, type ImportBenchOptions } from './import/options.ts';
import { psqlCopy } from './import/psql-copy.ts';
import { formatResults, type MemoryResult, type MethodRuns } from './import/report.ts';
import { stratumHttpImport } from './import/stratum-http.ts';
import { BENCH_ORDER_ID, disableAutovacuum, resetForRun, verifyImported } from './import/tables.ts';
import { cpuBetween, sampleCpu } from './support/cpu-time.ts';
import { openBenchServer, type BenchServer } from './support/database.ts';
import { collectGarbage } from './support/gc.ts';
import { readProcessMemory, sampleRssPeak } from './support/process-memory.ts';
import { interleave } from './support/schedule.ts';
import { spawnReady, type ReadyProcess } from './support/spawn-ready.ts';

const SERVER_SCRIPT = fileURLToPath(new URL('./import/server-process.ts', import.meta.url));
/** On DATABASE_URL's server the benchmark works in a database of its own, never the one the URL names. */
const EXTERNAL_DATABASE = 'stratum_bench_import';
const PSQL = process.env.PSQL?.trim() || 'psql';

interface Planned {
  key: MethodRuns['key'];
  method: ImportMethod;
  stratum: boolean;
  samples: number;
  runs: MethodRuns;
}
interface Server {
  port: number;
  databaseUrl: string;
}

/**
 * Imports the same generated CSV into orders.order_items through stratum's HTTP import, `psql \copy` and
 * multi-row INSERTs, in one run, and the stratum server's memory while doing so; see docs/benchmarks.md.
 * Prints markdown on stdout and progress on stderr.
 */
export async function runImportBench(argv: readonly string[]): Promise<void> {
  const options = parseImportOptions(argv);
  const started = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-bench-import-'));
  let external: BenchServer | undefined;
  let server: ReadyProcess<Server> | undefined;
  let sql: Sql | undefined;
  const onSignal = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    void (server?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    progress(`generating ${options.rows.toLocaleString('en-US')} rows (and a fifth of them) in ${dir}`);
    const full = await writeCsvFiles(dir, 'items', options.rows, BENCH_ORDER_ID);
    const smaller = await writeCsvFiles(dir, 'items-fifth', Math.floor(options.rows / 5), BENCH_ORDER_ID);
    external = process.env.DATABASE_URL?.trim() ? await openBenchServer(process.env) : undefined;
    const databaseUrl = external ? await external.createDatabase(EXTERNAL_DATABASE) : '';
    progress('starting the stratum server process');
    server = await spawnReady<Server>({
      script: SERVER_SCRIPT,
      label: 'the stratum server process',
      startTimeoutMs: 180_000,
      stopGraceMs: 60_000,
      nodeArgs: options.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir] : [],
      env: { ...process.env, DATABASE_URL: databaseUrl },
    });
    sql = createPool(
      { url: server.ready.databaseUrl },
      { max: 2, applicationName: 'stratum-bench-import', idleTimeoutSeconds: 3600 },
    );
    await disableAutovacuum(sql);
    const [{ server_version: version }] = await sql<[{ server_version: string }]>`show server_version`;
    const plan = planMethods(server.ready, sql, options);

    const memory = await measureMemory(sql, server.pid, plan[0]!.method, smaller, full);
    for (const p of plan.filter((x) => !x.stratum)) {
      progress(`warm-up ${p.method.name} (${smaller.rows.toLocaleString('en-US')} rows)`);
      await resetForRun(sql);
      await p.method.run(smaller);
    }
    const rounds = interleave(plan);
    for (const [r, round] of rounds.entries()) {
      for (const p of round) await timedRun(sql, server.pid, p, full);
      progress(
        `round ${r + 1}/${rounds.length}: ${round.map((p) => `${p.key} ${p.runs.seconds.at(-1)!.toFixed(2)} s`).join(', ')}`,
      );
    }
    memory.lifetimePeakBytes = readProcessMemory(server.pid)?.peakRssBytes;
    console.log(
      [
        heading(options, full, version),
        formatResults(
          full.rows,
          plan.map((p) => p.runs),
          memory,
        ),
      ].join('\n'),
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await sql?.end({ timeout: 5 });
    await server?.stop();
    await external?.dropDatabase(EXTERNAL_DATABASE);
    await external?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

function planMethods(server: Server, sql: Sql, options: ImportBenchOptions): Planned[] {
  const baseUrl = `http://127.0.0.1:${server.port}`;
  const planned = (key: MethodRuns['key'], method: ImportMethod, stratum: boolean): Planned => ({
    key,
    method,
    stratum,
    samples: options.rounds,
    runs: { key, name: method.name, seconds: [], serverCpu: [], serverPeakRss: [] },
  });
  return [
    planned('stratum', stratumHttpImport(baseUrl, 1000), true),
    planned('psql', psqlCopy(server.databaseUrl, PSQL), false),
    planned('inserts', multiRowInserts(sql, 1000), false),
    planned('stratumLargeChunks', stratumHttpImport(baseUrl, 10_000), true),
  ];
}

/** The fresh server's RSS, then its peak while importing the smaller file and the full one (also stratum's warm-up). */
async function measureMemory(
  sql: Sql,
  pid: number,
  stratum: ImportMethod,
  smaller: CsvFiles,
  full: CsvFiles,
): Promise<MemoryResult> {
  const beforeBytes = readProcessMemory(pid)?.rssBytes;
  const peakOf = async (files: CsvFiles) => {
    progress(`memory: ${stratum.name}, ${files.rows.toLocaleString('en-US')} rows`);
    await resetForRun(sql);
    const sampler = sampleRssPeak(pid);
    let peakBytes: number | undefined;
    try {
      await stratum.run(files);
    } finally {
      peakBytes = sampler.stop();
    }
    await verifyImported(sql, files.rows, files.expectedTotal);
    return { rows: files.rows, peakBytes };
  };
  return { beforeBytes, smaller: await peakOf(smaller), full: await peakOf(full), lifetimePeakBytes: undefined };
}

/** One timed import on freshly emptied tables, checked afterwards (row count; for stratum, the order's total too). */
async function timedRun(sql: Sql, pid: number, p: Planned, files: CsvFiles): Promise<void> {
  await resetForRun(sql);
  collectGarbage();
  const sampler = sampleRssPeak(pid);
  const cpuBefore = sampleCpu(pid);
  const t0 = performance.now();
  let peakBytes: number | undefined;
  try {
    await p.method.run(files);
  } finally {
    peakBytes = sampler.stop();
  }
  p.runs.seconds.push((performance.now() - t0) / 1000);
  p.runs.serverCpu.push(cpuBetween(cpuBefore, sampleCpu(pid)).other ?? Number.NaN);
  p.runs.serverPeakRss.push(peakBytes);
  await verifyImported(sql, files.rows, p.stratum ? files.expectedTotal : undefined);
}

function heading(options: ImportBenchOptions, files: CsvFiles, version: string): string {
  const cpus = os.cpus();
  const database = process.env.DATABASE_URL?.trim()
    ? `DATABASE_URL, database ${EXTERNAL_DATABASE}`
    : `embedded, ${BENCH_IMPORT_HOME}`;
  return [
    `## Bulk import: ${files.rows.toLocaleString('en-US')} order items through stratum, psql \\copy and multi-row INSERTs`,
    '',
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, ` +
      `Node ${process.version}, PostgreSQL ${version} (${database})`,
    '',
    `One generated file of ${files.rows.toLocaleString('en-US')} valid rows (${(files.bytes / 2 ** 20).toFixed(1)} MiB, product_id,quantity,price), ` +
      `imported ${options.rounds} times by each method, the methods interleaved with the order rotating each round; before every run ` +
      'orders.order_items and orders.orders are truncated, vacuumed and checkpointed, and one fresh order is created. ' +
      'rows/s is the row count over the median run; the stratum server runs in a process of its own.',
    '',
  ].join('\n');
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
