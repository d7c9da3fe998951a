import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { judgeAnswers, judgeCheckouts, judgeProbe, judgeSettled, judgeStock } from './contention-checks.ts';
import type { Ledger } from './contention-ledger.ts';
import { judgeOrders } from './contention-order-checks.ts';
import type { AnswerRecord, SettleCounts } from './contention-records.ts';
import { formatContention, summarizeRoutes } from './contention-report.ts';
import { HOT_ORDERS, type HotSet } from './contention-setup.ts';
import { readSettleCounts, readSnapshot, type ContentionDatabases } from './contention-snapshot.ts';
import type { HttpAnswer, HttpTarget } from './http-target.ts';
import type { ScenarioSettings, ScenarioVerdict } from './scenario.ts';

export interface ContentionRun {
  ledger: Ledger;
  answers: readonly AnswerRecord[];
  hot: HotSet;
  settings: ScenarioSettings;
  peakInFlight(): number;
  routes: readonly string[];
}

const POLL_MS = 1_000;

const isSettled = (c: SettleCounts) =>
  Object.values(c.prepared).every((n) => n === 0) && c.unfinishedSagas === 0 && c.decisionsWithoutBranches === 0;

/** Polls until nothing is left in doubt, or `settleS` has passed; returns the last counts and the seconds waited. */
export async function waitUntilSettled(
  dbs: ContentionDatabases,
  settleS: number,
  log: (line: string) => void,
): Promise<{ counts: SettleCounts; waitedS: number }> {
  const started = performance.now();
  let lastLog = 0;
  for (;;) {
    const counts = await readSettleCounts(dbs);
    const waitedS = (performance.now() - started) / 1_000;
    if (isSettled(counts) || waitedS >= settleS) return { counts, waitedS };
    if (waitedS - lastLog >= 5) {
      lastLog = waitedS;
      log(
        `settling, ${waitedS.toFixed(0)} s: prepared ${JSON.stringify(counts.prepared)}, unfinished sagas ${counts.unfinishedSagas}, decisions without branches ${counts.decisionsWithoutBranches}`,
      );
    }
    await sleep(Math.min(POLL_MS, Math.max(0, settleS * 1_000 - (performance.now() - started))));
  }
}

/** A fresh POST /orders, timed from when it is sent; the order it makes is judged with the others. */
async function probeCreate(target: HttpTarget, run: ContentionRun) {
  const customer = run.hot.customers[0]!.id;
  const tag = `ct:${run.settings.runTag}:probe`;
  const items = [{ productId: run.hot.products[0]!, quantity: 1, price: '2.50' }];
  let answer: HttpAnswer | undefined;
  const sent = performance.now();
  const outcome = await target.send(
    {
      kind: 'probe',
      method: 'POST',
      path: '/orders',
      body: { customerId: customer, items, notes: tag },
      expectStatus: 201,
      onAnswer: (a) => {
        answer = a;
      },
    },
    sent,
  );
  run.ledger.onCreated(tag, customer, items.length, answer?.status ?? null, answer?.body);
  return {
    status: answer?.status ?? null,
    code: outcome.ok ? null : outcome.code,
    latencyMs: answer?.latencyMs ?? null,
  };
}

/**
 * The checks of orders-contention once the load is over: the answers, then (after waiting up to --settle s for
 * nothing to be left in doubt) a fresh POST /orders, then every shard and the catalog against the ledger.
 */
export async function verifyContention(
  target: HttpTarget,
  run: ContentionRun,
  log: (line: string) => void,
): Promise<ScenarioVerdict> {
  const { dbs } = run.hot;
  try {
    const deadlineMs = run.settings.deadlineMs ?? 2_000;
    log(`load over; waiting up to ${run.settings.settleS ?? 30} s for prepared transactions and sagas to finish`);
    const settled = await waitUntilSettled(dbs, run.settings.settleS ?? 30, log);
    const probe = await probeCreate(target, run);
    const snapshot = await readSnapshot(dbs, {
      customers: run.hot.customers.map((c) => c.id),
      products: run.hot.products,
      orderIds: run.ledger.knownIds(),
    });
    const checks = [
      ...judgeAnswers(run.answers, deadlineMs),
      judgeSettled(settled.counts, settled.waitedS),
      ...judgeOrders(run.ledger.lineages, run.ledger.creations, snapshot),
      judgeStock(
        snapshot,
        run.hot.products.map((productId, i) => ({ productId, initial: run.hot.stock[i]! })),
      ),
      judgeCheckouts(run.ledger.checkouts, snapshot),
      judgeProbe(probe),
    ];
    const routes = summarizeRoutes(run.answers, run.routes);
    const notes = [
      `${run.answers.length} requests, at most ${run.peakInFlight()} in flight at once; hot set: ${run.hot.customers.length} customers on ` +
        `${dbs.shards.length} shards, the ${Math.min(HOT_ORDERS, run.ledger.lineages.length)} newest of ${run.ledger.lineages.length} orders; deadline ${deadlineMs} ms`,
    ];
    return {
      ok: checks.every((c) => c.problems.length === 0),
      lines: formatContention(routes, notes, checks),
      json: { routes, peakInFlight: run.peakInFlight(), settle: settled, probe, checks },
    };
  } finally {
    await dbs.close();
  }
}
