import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { openBenchServer, type BenchServer } from './support/database.ts';
import { parseShardsOptions, BENCH_SHARDS_HOME, type ShardsBenchOptions } from './shards/options.ts';
import { openReadDataset, READ_SHARD_COUNT, type ReadDataset } from './shards/read-dataset.ts';
import { timeRead, type ReadTimings } from './shards/read-latency.ts';
import { defineReads } from './shards/reads.ts';
import { formatReadRatios, formatReadTable, formatWriteRatios, formatWriteTable } from './shards/report.ts';
import { startStratumServer, type StratumServer } from './shards/stratum-server.ts';
import {
  benchCreates,
  dropWriteDatabases,
  prepareWriteDatabases,
  WRITE_SHARD_COUNTS,
  type WriteResult,
} from './shards/write-throughput.ts';

/**
 * Orders on shards, in one run: cross-shard listings and stats against the slowest shard's own query, on
 * 4 shards of generated orders; then POST /orders throughput with 1, 2 and 4 shards; see docs/benchmarks.md.
 * Prints markdown on stdout and progress on stderr.
 */
export async function runShardsBench(argv: readonly string[]): Promise<void> {
  const options = parseShardsOptions(argv);
  const started = performance.now();
  progress(
    `starting PostgreSQL (${process.env.DATABASE_URL?.trim() ? 'DATABASE_URL' : `embedded, ${BENCH_SHARDS_HOME}`})`,
  );
  const server = await openBenchServer(process.env, BENCH_SHARDS_HOME);
  let dataset: ReadDataset | undefined;
  let stratum: StratumServer | undefined;
  try {
    const writeUrls = await prepareWriteDatabases(server);
    dataset = await openReadDataset(server, writeUrls.get(1)!, options, progress);

    progress(`starting stratum over the read data set (${READ_SHARD_COUNT} shards)`);
    stratum = await startStratumServer(dataset.url, READ_SHARD_COUNT);
    const reads: ReadTimings[] = [];
    for (const read of defineReads(dataset.ordersPerShard)) {
      progress(`${read.name}: ${options.rounds} rounds`);
      reads.push(await timeRead(read, stratum.baseUrl, dataset.shards.all(), options.rounds, progress));
    }
    await stratum.stop();
    stratum = undefined;

    const writes = options.readsOnly
      ? []
      : await benchCreates(
          writeUrls,
          { connections: options.connections, seconds: options.writeSeconds, rounds: options.writeRounds },
          progress,
        );
    console.log(report(options, server, dataset, reads, writes));
    await dropWriteDatabases(server);
  } finally {
    await stratum?.stop();
    await dataset?.close();
    await server.close();
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

function report(
  options: ShardsBenchOptions,
  server: BenchServer,
  dataset: ReadDataset,
  reads: ReadTimings[],
  writes: WriteResult[],
): string {
  const cpus = os.cpus();
  const built = dataset.generated
    ? `built in this run in ${dataset.generated.seconds.toFixed(0)} s (${dataset.generated.shards.map((s) => `shard ${s.shardId}: ${s.customers.toLocaleString('en-US')} customers, ${s.items.toLocaleString('en-US')} items`).join('; ')})`
    : 'reused from an earlier run (checked before use)';
  return [
    '## Orders on shards: cross-shard reads and create throughput',
    '',
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, ` +
      `Node ${process.version}, PostgreSQL ${server.version} (${server.source}); every shard is a database on that one server`,
    '',
    `### Cross-shard reads: ${READ_SHARD_COUNT} shards of ${dataset.ordersPerShard.toLocaleString('en-US')} orders`,
    '',
    `Data set ${dataset.name}: ${built}. 1 to 4 items per order, 10% of the orders pending. ` +
      `stratum runs in a process of its own (SHARD_DEADLINE_MS default); its answers were checked against the shards' own first. ` +
      `${options.rounds} timed rounds per read after 20 untimed ones; each round asks stratum over HTTP (Node fetch, keep-alive, until the body is read), ` +
      'then every shard alone one after another, every shard at once, for a page the statements stratum itself sends each shard at once, ' +
      'directly from the benchmark process over the same kind of pool, and GET /healthz of the same stratum server (no database: the HTTP floor); ' +
      'the methods rotate within the round. ' +
      "A shard's own query is the statement stratum sends it, with the same text: for a page, shardPageQuery asked for the whole page with all 50 orders whole and their items (stratum asks each shard for the 50 ids and " +
      'only about its share of the orders whole); for the stats, orderStatsQuery. ' +
      '"slowest shard alone" is the slowest of the four alone-times of a round; p99 is nearest rank.',
    '',
    formatReadTable(reads),
    '',
    formatReadRatios(reads),
    ...(writes.length === 0 ? [] : writeReport(options, writes)),
  ].join('\n');
}

function writeReport(options: ShardsBenchOptions, writes: WriteResult[]): string[] {
  return [
    '',
    '### POST /orders throughput with 1, 2 and 4 shards',
    '',
    `One stratum server process per shard count (ORDERS_SHARD_COUNT=${WRITE_SHARD_COUNTS.join('/')}, ROLE=${process.env.ROLE?.trim() || 'all'}, ` +
      `pools of up to ${process.env.DB_POOL_MAX?.trim() || 10} connections per shard), each over fresh databases of its own; ` +
      `autocannon in the benchmark process, ${options.connections} connections, no pipelining, a random order of 1 to 3 items for one of ` +
      `1,000,000 customers per request; 3 s warm-up each, then ${options.writeRounds} runs of ${options.writeSeconds} s per shard count, ` +
      "the order rotating; after each run the shards' outbox relays (in the server process unless ROLE=api) finish forwarding its events before the next run. " +
      'CPU comes from /proc: the server process, every process of the PostgreSQL server, this process (autocannon), and the rest of the machine. ' +
      'Every order answered 201 was found on its shards afterwards.',
    '',
    formatWriteTable(writes),
    '',
    formatWriteRatios(writes),
  ];
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
