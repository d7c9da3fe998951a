import os from 'node:os';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { bucketOfKey } from '../src/platform/sharding/buckets.ts';
import { openBenchServer } from './support/database.ts';
import { percentile } from './support/stats.ts';
import { startStratumServer, type StratumServer } from './shards/stratum-server.ts';
import { UsageError } from './users/options.ts';

const USAGE = 'usage: npm run bench -- contention [--seconds S (default 10)] [--clients 1,4,16,64]';
const SHARDS = 4;
const DATABASE = 'stratum_bench_contention';

interface Options {
  seconds: number;
  clients: number[];
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { seconds: 10, clients: [1, 4, 16, 64] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--seconds' && value && Number(value) >= 1) options.seconds = Number(value);
    else if (
      flag === '--clients' &&
      value &&
      value.split(',').every((c) => Number.isInteger(Number(c)) && Number(c) >= 1)
    ) {
      options.clients = value.split(',').map(Number);
    } else throw new UsageError(`unknown or incomplete argument "${flag}"\n${USAGE}`);
  }
  if (!options.clients.includes(1)) options.clients.unshift(1);
  return options;
}

interface Run {
  clients: number;
  transfers: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  refused: number;
  failed: number;
}

/**
 * Cross-shard transfers (POST /orders/:id/transfer, each a two-phase commit over two of 4 shards) with 1, 4, 16
 * and 64 concurrent clients, each moving an order of its own back and forth between two customers on different
 * shards; the 1-client run is the same transfers one at a time. Prints transfers per second, p50 and p99, and
 * each run's ratio to the one-at-a-time run. Markdown on stdout, progress on stderr.
 */
export async function runContentionBench(argv: readonly string[]): Promise<void> {
  const options = parseOptions(argv);
  progress(`starting PostgreSQL (${process.env.DATABASE_URL?.trim() ? 'DATABASE_URL' : 'embedded, .stratum-bench'})`);
  const server = await openBenchServer(process.env);
  const names = [DATABASE, ...Array.from({ length: SHARDS }, (_, i) => `${DATABASE}_orders_${i}`)];
  let stratum: StratumServer | undefined;
  try {
    for (const name of names.slice(1)) await server.dropDatabase(name);
    const catalogUrl = await server.createDatabase(DATABASE);
    progress(`starting stratum on ${SHARDS} shards`);
    stratum = await startStratumServer(catalogUrl, SHARDS);
    const pairs = await customerPairs(catalogUrl, Math.max(...options.clients));
    const runs: Run[] = [];
    await drive(stratum.baseUrl, pairs.slice(0, 4), 2, () => {}); // warm-up: connections, plans
    for (const clients of options.clients) {
      progress(`${clients} client(s), ${options.seconds} s`);
      runs.push(await drive(stratum.baseUrl, pairs.slice(0, clients), options.seconds, progress));
    }
    console.log(report(options, server.source, server.version, runs));
  } finally {
    await stratum?.stop();
    for (const name of names) await server.dropDatabase(name).catch(() => {});
    await server.close();
  }
}

interface Pair {
  a: number;
  b: number;
}

/** `count` pairs of customers whose buckets are on different shards, one pair per client. */
async function customerPairs(catalogUrl: string, count: number): Promise<Pair[]> {
  const catalog = postgres(catalogUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await catalog<{ bucket: number; shard_id: number }[]>`select bucket, shard_id from sharding.buckets`;
    const shardOf = new Map(rows.map((r) => [r.bucket, r.shard_id]));
    const pairs: Pair[] = [];
    for (let customer = 1_000_000; pairs.length < count; customer += 2) {
      if (shardOf.get(bucketOfKey(customer)) !== shardOf.get(bucketOfKey(customer + 1)))
        pairs.push({ a: customer, b: customer + 1 });
    }
    return pairs;
  } finally {
    await catalog.end({ timeout: 5 });
  }
}

/** Each client creates its order, then transfers it between its two customers until the time is up. */
async function drive(
  baseUrl: string,
  pairs: readonly Pair[],
  seconds: number,
  log: (line: string) => void,
): Promise<Run> {
  const latencies: number[] = [];
  let refused = 0;
  let failed = 0;
  const post = (path: string, body: unknown) =>
    fetch(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const orders = await Promise.all(
    pairs.map(async (pair) => {
      const res = await post('/orders', { customerId: pair.a, items: [{ productId: 1, quantity: 1, price: '1.00' }] });
      if (res.status !== 201) throw new Error(`creating an order answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { id: number }).id;
    }),
  );
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    pairs.map(async (pair, i) => {
      let id = orders[i]!;
      let to = pair.b;
      while (performance.now() < until) {
        const t0 = performance.now();
        const res = await post(`/orders/${id}/transfer`, { toCustomerId: to });
        const body = (await res.json()) as { id?: number; code?: string };
        if (res.status === 200) {
          latencies.push(performance.now() - t0);
          id = body.id!;
          to = to === pair.a ? pair.b : pair.a;
        } else if (res.status === 503) {
          refused += 1;
          await new Promise((r) => setTimeout(r, 50));
        } else {
          failed += 1;
          log(`transfer of ${id} answered ${res.status} ${body.code ?? ''}`);
          if (failed > 20) throw new Error('too many failed transfers');
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return {
    clients: pairs.length,
    transfers: latencies.length,
    perSecond: latencies.length / elapsed,
    p50Ms: latencies.length ? percentile(latencies, 50) : Number.NaN,
    p99Ms: latencies.length ? percentile(latencies, 99) : Number.NaN,
    refused,
    failed,
  };
}

function report(options: Options, source: string, version: string, runs: readonly Run[]): string {
  const serial = runs.find((r) => r.clients === 1)!;
  const cpus = os.cpus();
  const lines = [
    `## Cross-shard transfers under concurrency (${new Date().toISOString().slice(0, 10)})`,
    '',
    `PostgreSQL ${version} (${source}), ${SHARDS} shards (SHARD_POOL_MAX ${process.env.SHARD_POOL_MAX ?? 4}), ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}; ${options.seconds} s per run; each client moves its own order back and forth between two customers on different shards (one two-phase commit per transfer).`,
    '',
    '| clients | transfers | transfers/s | p50 ms | p99 ms | 503 (retried) | other failures |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...runs.map(
      (r) =>
        `| ${r.clients} | ${r.transfers} | ${r.perSecond.toFixed(1)} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.refused} | ${r.failed} |`,
    ),
    '',
    ...runs
      .filter((r) => r !== serial)
      .map(
        (r) =>
          `ratio ${r.clients} clients / one at a time: throughput ${(r.perSecond / serial.perSecond).toFixed(2)}x, p99 ${(r.p99Ms / serial.p99Ms).toFixed(2)}x`,
      ),
  ];
  return lines.join('\n');
}

function progress(line: string): void {
  process.stderr.write(`[bench contention] ${line}\n`);
}
