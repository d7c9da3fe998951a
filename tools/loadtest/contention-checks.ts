import type { AnswerRecord, Check, CheckoutRecord, ContentionSnapshot, SettleCounts } from './contention-records.ts';

/** How much later than the deadline an answer may come: the last-resort timeout's margin and the network. */
export const DEADLINE_MARGIN_MS = 250;
/** The fresh POST /orders after the load must answer within this. */
export const PROBE_LIMIT_MS = 1_000;

function countBy<T>(items: readonly T[], key: (item: T) => string): string {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} x ${k}`)
    .join(', ');
}

/**
 * Every request answered, no 5xx other than 503 with Retry-After, no answer later than the deadline plus
 * DEADLINE_MARGIN_MS.
 * @example judgeAnswers([{ route: 'POST /orders', status: 500, code: 'INTERNAL', retryAfter: false, latencyMs: 12 }], 2000)[1]!.problems // ['1 x 500 INTERNAL on POST /orders']
 */
export function judgeAnswers(answers: readonly AnswerRecord[], deadlineMs: number): Check[] {
  const unanswered = answers.filter((a) => a.status === null);
  const bad5xx = answers.filter((a) => a.status !== null && a.status >= 500 && !(a.status === 503 && a.retryAfter));
  const limit = deadlineMs + DEADLINE_MARGIN_MS;
  const late = answers.filter((a) => a.latencyMs !== null && a.latencyMs > limit);
  const groups = (
    list: readonly AnswerRecord[],
    what: (a: AnswerRecord) => string,
    extra: (list: readonly AnswerRecord[]) => string = () => '',
  ) => {
    const byRoute = new Map<string, AnswerRecord[]>();
    for (const a of list) byRoute.set(a.route, [...(byRoute.get(a.route) ?? []), a]);
    return [...byRoute.entries()].map(([route, mine]) => `${countBy(mine, what)} on ${route}${extra(mine)}`);
  };
  const slowest = (list: readonly AnswerRecord[]) =>
    Math.max(...list.flatMap((a) => (a.latencyMs === null ? [] : [a.latencyMs])));
  return [
    {
      name: 'every request answered',
      summary: `${answers.length - unanswered.length} of ${answers.length}`,
      problems: groups(unanswered, (a) => a.code ?? 'no answer'),
    },
    {
      name: 'no 5xx other than 503 with Retry-After',
      summary: `${answers.filter((a) => a.status === 503).length} x 503, each with Retry-After`,
      problems: groups(bad5xx, (a) =>
        `${a.status} ${a.code ?? ''}${a.status === 503 ? ' without Retry-After' : ''}`.trim(),
      ),
    },
    {
      name: `no answer later than ${limit} ms`,
      summary: `slowest ${answers.some((a) => a.latencyMs !== null) ? slowest(answers).toFixed(0) : '-'} ms`,
      problems: groups(
        late,
        (a) => String(a.status),
        (mine) => `, slowest ${slowest(mine).toFixed(0)} ms`,
      ),
    },
  ];
}

/** 0 prepared transactions on every shard, 0 unfinished sagas, 0 decisions left without branches. */
export function judgeSettled(counts: SettleCounts, waitedS: number): Check {
  const problems: string[] = [];
  for (const [shard, n] of Object.entries(counts.prepared))
    if (n > 0) problems.push(`${n} prepared transaction(s) on shard ${shard}`);
  if (counts.unfinishedSagas > 0) problems.push(`${counts.unfinishedSagas} saga(s) still running or compensating`);
  if (counts.decisionsWithoutBranches > 0)
    problems.push(`${counts.decisionsWithoutBranches} decision(s) in sharding.decisions whose branches are gone`);
  const shards = Object.keys(counts.prepared).length;
  return {
    name: 'nothing left in doubt',
    problems,
    summary: `after ${waitedS.toFixed(1)} s: 0 prepared transactions on ${shards} shard(s), 0 unfinished sagas, 0 decisions without branches`,
  };
}

/** The fresh POST /orders after the load: 201 within PROBE_LIMIT_MS. */
export function judgeProbe(probe: { status: number | null; code: string | null; latencyMs: number | null }): Check {
  const ok = probe.status === 201 && probe.latencyMs !== null && probe.latencyMs <= PROBE_LIMIT_MS;
  const took = probe.latencyMs === null ? 'no answer' : `${probe.latencyMs.toFixed(0)} ms`;
  return {
    name: `a fresh POST /orders answers 201 within ${PROBE_LIMIT_MS} ms`,
    summary: `201 in ${took}`,
    problems: ok ? [] : [`${probe.status ?? probe.code ?? 'no answer'} after ${took}`],
  };
}

/**
 * Stock never below zero, and none lost: on each shard, available + reserved = the stock set before the load.
 * `products` are the run's, each with the stock it was set to on every shard.
 */
export function judgeStock(
  snapshot: Pick<ContentionSnapshot, 'stock' | 'shardIds'>,
  products: readonly { productId: number; initial: number }[],
): Check {
  const problems: string[] = [];
  for (const shardId of snapshot.shardIds) {
    for (const { productId, initial } of products) {
      const row = snapshot.stock.find((s) => s.shardId === shardId && s.productId === productId);
      if (!row) problems.push(`product ${productId} has no stock row on shard ${shardId}`);
      else if (row.available < 0) problems.push(`product ${productId} is at ${row.available} on shard ${shardId}`);
      else if (row.available + row.reserved !== initial) {
        problems.push(
          `product ${productId} on shard ${shardId}: ${row.available} available + ${row.reserved} reserved, set to ${initial}`,
        );
      }
    }
  }
  const reserved = snapshot.stock.reduce((sum, s) => sum + s.reserved, 0);
  return {
    name: 'stock never below zero, none lost',
    summary: `${products.length} product(s) on ${snapshot.shardIds.length} shard(s), ${reserved} reserved`,
    problems,
  };
}

/**
 * Charges equal completed checkouts, saga by saga: a completed saga has its charge, its one order in
 * processing and its reservations; a compensated one has none of them (its order, if made, cancelled). A 201
 * must be completed, a 4xx compensated; unknown outcomes may be either.
 */
export function judgeCheckouts(
  records: readonly CheckoutRecord[],
  snapshot: Pick<ContentionSnapshot, 'sagas' | 'charges' | 'orders' | 'reservedSagas'>,
): Check {
  const problems: string[] = [];
  const charged = new Set(snapshot.charges.filter((c) => c.status === 'charged').map((c) => c.key));
  const reserved = new Set(snapshot.reservedSagas);
  const sagas = new Map(snapshot.sagas.map((s) => [s.id, s]));
  for (const saga of snapshot.sagas) {
    const orders = snapshot.orders.filter((o) => o.sagaId === saga.id);
    if (orders.length > 1)
      problems.push(
        `saga ${saga.id}: ${orders.length} orders (${orders.map((o) => `${o.id} on shard ${o.shardId}`).join(', ')})`,
      );
    if (saga.status === 'completed') {
      if (!charged.has(saga.id)) problems.push(`saga ${saga.id} completed without a charge`);
      if (orders.length === 0) problems.push(`saga ${saga.id} completed without its order`);
      else if (orders[0]!.status !== 'processing')
        problems.push(`saga ${saga.id} completed, its order ${orders[0]!.id} is ${orders[0]!.status}`);
      if (!reserved.has(saga.id)) problems.push(`saga ${saga.id} completed without stock reserved`);
    } else if (saga.status === 'compensated') {
      if (charged.has(saga.id)) problems.push(`saga ${saga.id} compensated, its charge kept`);
      const live = orders.find((o) => o.status !== 'cancelled');
      if (live) problems.push(`saga ${saga.id} compensated, its order ${live.id} is ${live.status}`);
      if (reserved.has(saga.id)) problems.push(`saga ${saga.id} compensated, its stock still reserved`);
    } else {
      problems.push(`saga ${saga.id} is ${saga.status}`);
    }
  }
  for (const record of records) {
    if (record.sagaId === null || record.effect === 'unknown') continue;
    const saga = sagas.get(record.sagaId);
    const want = record.effect === 'acked' ? 'completed' : 'compensated';
    if (!saga)
      problems.push(
        `checkout answered ${record.effect === 'acked' ? '201' : 'a refusal'} for saga ${record.sagaId}, which does not exist`,
      );
    else if (saga.status !== want)
      problems.push(
        `checkout answered ${record.effect === 'acked' ? '201' : 'a refusal'}, saga ${record.sagaId} is ${saga.status}`,
      );
  }
  const acked = records.filter((r) => r.effect === 'acked').length;
  const unknown = records.filter((r) => r.effect === 'unknown').length;
  const completed = snapshot.sagas.filter((s) => s.status === 'completed').length;
  const charges = snapshot.sagas.filter((s) => charged.has(s.id)).length;
  if (charges !== completed) problems.push(`${charges} charge(s) for ${completed} completed checkout(s)`);
  if (completed < acked || completed > acked + unknown)
    problems.push(`${completed} completed checkouts for ${acked} answered 201 and ${unknown} unknown`);
  if (snapshot.sagas.length > records.length)
    problems.push(`${snapshot.sagas.length} checkout sagas for ${records.length} checkouts sent`);
  return {
    name: 'charges equal completed checkouts',
    problems,
    summary: `${charges} charges, ${completed} completed of ${snapshot.sagas.length} sagas (${acked} answered 201, ${unknown} unknown)`,
  };
}
