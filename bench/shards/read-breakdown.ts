/**
 * Where the time of one cross-shard read goes, piece by piece, on the read data set of the shards benchmark:
 * a round trip to a shard (`select 1`), each shard statement alone, the orders service in the process (no
 * HTTP), the route through Fastify without a network (`inject`), and over real HTTP. Medians and p99 of
 * interleaved samples. Run under the bench lock after `npm run bench -- shards` has built the data set:
 *   flock /tmp/stratum-bench.lock npx tsx bench/shards/read-breakdown.ts [--samples 300]
 */
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { performance } from 'node:perf_hooks';
import { openBenchServer } from '../support/database.ts';
import { collectGarbage } from '../support/gc.ts';
import { median, percentile } from '../support/stats.ts';
import { interleave } from '../support/schedule.ts';
import { BENCH_SHARDS_HOME } from './options.ts';
import { openReadDataset } from './read-dataset.ts';
import { prepareWriteDatabases, dropWriteDatabases } from './write-throughput.ts';
import { createOrdersService } from '../../src/contexts/orders/orders-service.ts';
import { ordersRoutes } from '../../src/contexts/orders/routes.ts';
import { installProblemHandlers } from '../../src/http/problem.ts';
import * as repo from '../../src/contexts/orders/orders-repository.ts';

const samplesArg = process.argv.indexOf('--samples');
const SAMPLES = samplesArg > 0 ? Number(process.argv[samplesArg + 1]) : 300;
const PATH = '/orders?status=pending&limit=50';

const server = await openBenchServer(process.env, BENCH_SHARDS_HOME);
const writeUrls = await prepareWriteDatabases(server);
const dataset = await openReadDataset(
  server,
  writeUrls.get(1)!,
  { ordersPerShard: 250_000, regenerate: false },
  () => {},
);
const shards = dataset.shards;
const shard0 = shards.all()[0]!;
const orders = createOrdersService({
  shards,
  payments: {} as never,
  shardDeadlineMs: 2000,
  txDeadlineMs: 5000,
  importDeadlineMs: 60_000,
});
const app = Fastify({ logger: false }).withTypeProvider<TypeBoxTypeProvider>();
installProblemHandlers(app);
ordersRoutes({
  orders,
  cache: { getOrLoad: (_k, load) => load(new AbortController().signal), invalidate: async () => {} },
  idempotencyTtlMs: 1000,
  importDeadlineMs: 60_000,
})(app);
app.get('/empty', async () => ({ ok: true }));
await app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
const someIds = (await repo.shardPageQuery(shard0.sql, { status: 'pending', limit: 13, ownedOnly: true }, 0)).map((r) =>
  Number(r.id),
);

const cases: Record<string, () => Promise<unknown>> = {
  'select 1 (shard 0)': () => shard0.sql`select 1`,
  'whole page of 50 (shard 0)': () =>
    repo.shardPageQuery(shard0.sql, { status: 'pending', limit: 50, ownedOnly: true }, 50),
  '50 ids, 21 whole (shard 0)': () =>
    repo.shardPageQuery(shard0.sql, { status: 'pending', limit: 50, ownedOnly: true }, 21),
  '50 ids only (shard 0)': () => repo.shardPageQuery(shard0.sql, { status: 'pending', limit: 50, ownedOnly: true }, 0),
  '13 orders by id (shard 0)': () => repo.ordersByIdsQuery(shard0.sql, someIds),
  '4 shards at once: 50 ids, 21 whole': () =>
    Promise.all(
      shards.all().map((s) => repo.shardPageQuery(s.sql, { status: 'pending', limit: 50, ownedOnly: true }, 21)),
    ),
  '4 shards at once: stats': () => Promise.all(shards.all().map((s) => repo.orderStatsQuery(s.sql))),
  'orderStatsQuery (shard 0)': () => repo.orderStatsQuery(shard0.sql),
  'service.list, in process': () => orders.list({ status: 'pending', limit: 50, consistency: 'strict' }),
  'service.stats, in process': () => orders.stats('strict'),
  'GET /orders via inject': () => app.inject({ method: 'GET', url: PATH }),
  'GET /orders/stats via inject': () => app.inject({ method: 'GET', url: '/orders/stats' }),
  'GET /empty over HTTP': () => fetch(`${base}/empty`).then((r) => r.text()),
  'GET /orders over HTTP': () => fetch(`${base}${PATH}`).then((r) => r.text()),
  'GET /orders/stats over HTTP': () => fetch(`${base}/orders/stats`).then((r) => r.text()),
};
const names = Object.keys(cases);
const times = new Map<string, number[]>(names.map((n) => [n, []]));
for (let w = 0; w < 30; w++) for (const n of names) await cases[n]!();
for (const round of interleave(names.map((name) => ({ name, samples: SAMPLES })))) {
  collectGarbage();
  for (const { name } of round) {
    const t0 = performance.now();
    await cases[name]!();
    times.get(name)!.push(performance.now() - t0);
  }
}
for (const n of names) {
  const t = times.get(n)!;
  console.log(`${n.padEnd(40)} p50 ${median(t).toFixed(3)} ms  p99 ${percentile(t, 99).toFixed(3)} ms`);
}
await app.close();
await dataset.close();
await dropWriteDatabases(server);
await server.close();
