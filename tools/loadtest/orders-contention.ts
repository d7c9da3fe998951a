import type { HttpAnswer, HttpTarget, RequestPlan } from './http-target.ts';
import { createLedger, type Lineage } from './contention-ledger.ts';
import type { AnswerRecord, OrderStatus } from './contention-records.ts';
import { HOT_ORDERS, prepareContention, type HotSet } from './contention-setup.ts';
import { verifyContention } from './contention-verify.ts';
import type { Random } from './random.ts';
import { pickWeighted, type Mix, type Scenario, type ScenarioSettings } from './scenario.ts';
import { CLIENT_OVERLOADED } from './tally.ts';

export const CONTENTION_MIX: Mix = [
  ['create', 10],
  ['change', 15],
  ['transfer-cross', 12],
  ['transfer-same', 8],
  ['checkout', 15],
  ['import', 10],
  ['read', 15],
  ['list', 10],
  ['stats', 5],
];

/** The rows of the report, one per route (transfers and checkouts by kind). */
export const CONTENTION_ROUTES = {
  create: 'POST /orders',
  change: 'PATCH /orders/:id',
  transferCross: 'POST /orders/:id/transfer cross-shard',
  transferSame: 'POST /orders/:id/transfer same-shard',
  paid: 'POST /orders/checkout paid',
  declined: 'POST /orders/checkout declined',
  timeout: 'POST /orders/checkout times out',
  import: 'POST /orders/:id/items/import',
  read: 'GET /orders/:id',
  list: 'GET /orders?customerId=',
  stats: 'GET /orders/stats',
} as const;

const NEXT: Readonly<Record<OrderStatus, readonly [OrderStatus, OrderStatus] | undefined>> = {
  pending: ['processing', 'cancelled'],
  processing: ['completed', 'cancelled'],
  completed: undefined,
  cancelled: undefined,
};

/**
 * All write paths of orders at once on a hot set: creations, status changes, transfers across and within
 * shards, checkouts (paid, declined, timing out), CSV imports and reads, released in bursts (--concurrency).
 * Every answer goes into the ledger; after the load, verifyContention() judges what the databases hold
 * against what was acknowledged. Four draws per arrival; which order a write picks depends on the answers.
 */
export function ordersContention(settings: ScenarioSettings): Scenario {
  const ledger = createLedger();
  const answers: AnswerRecord[] = [];
  let hot: HotSet | undefined;
  let created = 0;
  let inFlight = 0;
  let peakInFlight = 0;

  /** Logs the answer, then hands status and body to the bookkeeping; a request never sent changed nothing. */
  const tracked = (
    plan: RequestPlan,
    settle: (status: number | null, body: unknown) => void,
    notSent = () => {},
  ): RequestPlan => {
    let answer: HttpAnswer | undefined;
    inFlight += 1;
    peakInFlight = Math.max(peakInFlight, inFlight);
    return {
      ...plan,
      onAnswer: (a) => {
        answer = a;
      },
      onSettled: (outcome) => {
        inFlight -= 1;
        answers.push({
          route: plan.kind,
          status: answer?.status ?? null,
          retryAfter: answer?.retryAfter !== undefined,
          latencyMs: answer?.latencyMs ?? null,
          code: outcome === null ? CLIENT_OVERLOADED : outcome.ok ? null : outcome.code,
        });
        if (outcome === null) notSent();
        else settle(answer?.status ?? null, answer?.body);
      },
    };
  };

  const pick = <T>(list: readonly T[], x: number): T => list[Math.floor(x * list.length)]!;
  const window = () => ledger.lineages.slice(-HOT_ORDERS);
  const writable = () => window().filter((l) => !l.uncertain && l.currentCustomer !== null);
  const item = (product: number, quantity: number) => ({ productId: product, quantity, price: '2.50' });

  const create = (a: number, b: number, c: number): RequestPlan => {
    const customer = pick(hot!.customers, a).id;
    const items = [
      item(pick(hot!.products, c), 1 + Math.floor(b * 3)),
      ...(b < 0.5 ? [] : [item(pick(hot!.products, 1 - c), 1)]),
    ];
    const tag = `ct:${settings.runTag}:${(created += 1)}`;
    return tracked(
      {
        kind: CONTENTION_ROUTES.create,
        method: 'POST',
        path: '/orders',
        body: { customerId: customer, items, notes: tag },
        expectStatus: 201,
      },
      (status, body) => {
        ledger.onCreated(tag, customer, items.length, status, body);
      },
    );
  };

  const read = (a: number): RequestPlan => {
    const unsettled = window().find((l) => l.uncertain && !l.resolving);
    const lineage = unsettled ?? pick(window(), a);
    if (unsettled) unsettled.resolving = true;
    const id = lineage.currentId;
    const done = () => {
      if (unsettled) unsettled.resolving = false;
    };
    return tracked(
      { kind: CONTENTION_ROUTES.read, method: 'GET', path: `/orders/${id}`, expectStatus: 200 },
      (status, body) => {
        done();
        ledger.onRead(lineage, id, status, body);
      },
      done,
    );
  };

  const change = (lineage: Lineage, b: number): RequestPlan => {
    const next = NEXT[lineage.status];
    // A finished order is still asked to move: the refusal, under contention, is part of the test.
    const to: OrderStatus = next ? next[b < 0.8 ? 0 : 1] : 'processing';
    return tracked(
      {
        kind: CONTENTION_ROUTES.change,
        method: 'PATCH',
        path: `/orders/${lineage.currentId}`,
        body: { status: to },
        expectStatus: 200,
      },
      (status, body) => ledger.onChanged(lineage, to, status, body),
    );
  };

  const transfer = (lineage: Lineage, b: number, cross: boolean): RequestPlan => {
    const from = lineage.currentId;
    const shard = hot!.customers.find((c) => c.id === lineage.currentCustomer)?.shard;
    const targets = hot!.customers.filter((c) =>
      cross ? c.shard !== shard : c.shard === shard && c.id !== lineage.currentCustomer,
    );
    if (targets.length === 0) return read(b); // one shard: nothing to cross to
    const toCustomer = pick(targets, b).id;
    return tracked(
      {
        kind: cross ? CONTENTION_ROUTES.transferCross : CONTENTION_ROUTES.transferSame,
        method: 'POST',
        path: `/orders/${from}/transfer`,
        body: { toCustomerId: toCustomer },
        expectStatus: 200,
      },
      (status, body) => ledger.onTransferred(lineage, from, toCustomer, status, body),
    );
  };

  const importItems = (lineage: Lineage, b: number, c: number): RequestPlan => {
    const rows = 1 + Math.floor(b * 4);
    const lines = Array.from({ length: rows }, (_, i) => `${pick(hot!.products, (c + i / rows) % 1)},1,1.25`);
    return tracked(
      {
        kind: CONTENTION_ROUTES.import,
        method: 'POST',
        path: `/orders/${lineage.currentId}/items/import`,
        expectStatus: 200,
        rawBody: { contentType: 'text/csv', text: `product_id,quantity,price\n${lines.join('\n')}\n` },
      },
      (status, body) => ledger.onImported(lineage, rows, status, body),
    );
  };

  const checkout = (a: number, b: number, c: number): RequestPlan => {
    const customer = pick(hot!.customers, a).id;
    const [route, token] =
      b < 0.6
        ? [CONTENTION_ROUTES.paid, 'tok_ok']
        : b < 0.85
          ? [CONTENTION_ROUTES.declined, 'tok_decline']
          : [CONTENTION_ROUTES.timeout, 'tok_timeout'];
    const items = [item(pick(hot!.products, c), 1 + (Math.floor(c * 100) % 2))];
    return tracked(
      {
        kind: route,
        method: 'POST',
        path: '/orders/checkout',
        body: { customerId: customer, items, paymentToken: token },
        expectStatus: 201,
      },
      (status, body) => ledger.onCheckout(customer, status, body),
    );
  };

  return {
    name: 'orders-contention',
    kinds: Object.values(CONTENTION_ROUTES),
    prepare: async (target: HttpTarget, log) => {
      hot = await prepareContention(target, ledger, settings, HOT_ORDERS, log);
    },
    nextRequest: (random: Random) => {
      const [roll, a, b, c] = [random(), random(), random(), random()];
      const kind = pickWeighted(CONTENTION_MIX, roll);
      const lineages = writable();
      if (kind === 'create') return create(a, b, c);
      if (kind === 'checkout') return checkout(a, b, c);
      if (kind === 'list')
        return tracked(
          {
            kind: CONTENTION_ROUTES.list,
            method: 'GET',
            path: `/orders?customerId=${pick(hot!.customers, a).id}&limit=50`,
            expectStatus: 200,
          },
          () => {},
        );
      if (kind === 'stats')
        return tracked(
          { kind: CONTENTION_ROUTES.stats, method: 'GET', path: '/orders/stats', expectStatus: 200 },
          () => {},
        );
      if (kind === 'read' || lineages.length === 0) return window().length > 0 ? read(a) : create(a, b, c);
      const lineage = pick(lineages, a);
      if (kind === 'change') return change(lineage, b);
      if (kind === 'import') return importItems(lineage, b, c);
      return transfer(lineage, b, kind === 'transfer-cross');
    },
    check: (target, log) =>
      verifyContention(
        target,
        {
          ledger,
          answers,
          hot: hot!,
          settings,
          peakInFlight: () => peakInFlight,
          routes: Object.values(CONTENTION_ROUTES),
        },
        log,
      ),
  };
}
