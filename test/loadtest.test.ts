import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seededAccountId, seededAccountName } from '../src/contexts/accounts/seed-ids.ts';
import { runLoadtestCommand } from '../tools/loadtest/command.ts';
import { openHttpTarget, type HttpTarget, type RequestPlan } from '../tools/loadtest/http-target.ts';
import { parseLoadtestArgs } from '../tools/loadtest/parse-args.ts';
import { percentile, summarizeLatencies } from '../tools/loadtest/percentiles.ts';
import { createRandom } from '../tools/loadtest/random.ts';
import type { Fetched } from '../tools/loadtest/read-back.ts';
import { judgeOrder, readBackOrders, type ExpectedOrder, type Listing } from '../tools/loadtest/read-back-orders.ts';
import { buildReport, formatReport, isCleanRun, type LoadtestReport } from '../tools/loadtest/report.ts';
import { runOpenModel } from '../tools/loadtest/run-open-model.ts';
import { createScenario } from '../tools/loadtest/scenarios.ts';
import { arrivalCount, arrivalsBy, arrivalTime, arrivalTimes } from '../tools/loadtest/schedule.ts';
import { createTally, type Outcome } from '../tools/loadtest/tally.ts';
import type { Sql } from '../src/platform/db/connect.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

describe('the arrival schedule', () => {
  it('starts as many requests as the area under the rate curve', () => {
    expect(arrivalCount({ rate: 50, ramp: 5, duration: 75 })).toBe(3625); // the source's read test: 125 + 70 × 50
    expect(arrivalCount({ rate: 10, ramp: 0, duration: 2 })).toBe(20);
    expect(arrivalCount({ rate: 10, ramp: 2, duration: 2 })).toBe(10);
    expect(arrivalCount({ rate: 3, ramp: 0, duration: 1.5 })).toBe(5); // 4.5 due: arrivals at 0, 1/3, 2/3, 1, 4/3
    expect(arrivalCount({ rate: 0.5, ramp: 0, duration: 1 })).toBe(1);
  });

  it('climbs linearly during the ramp, then holds the rate', () => {
    const profile = { rate: 50, ramp: 5, duration: 75 };
    expect(arrivalTime(profile, 0)).toBe(0);
    expect(arrivalTime(profile, 125)).toBeCloseTo(5, 9); // the ramp ends after rate × ramp / 2 arrivals
    expect(arrivalTime(profile, 175)).toBeCloseTo(6, 9); // then one every 1/50 s
    expect(arrivalsBy(profile, 2.5)).toBeCloseTo(31.25, 9); // a quarter of the ramp's arrivals by half its time
    const firstSecond = [...arrivalTimes(profile)].filter((t) => t < 1).length;
    const lastSecond = [...arrivalTimes(profile)].filter((t) => t >= 74).length;
    expect(firstSecond).toBe(5);
    expect(lastSecond).toBe(50);
  });

  it('yields ordered times inside the run, as many as arrivalCount, inverting arrivalsBy', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 200, noNaN: true }),
        fc.double({ min: 0.1, max: 20, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (rate, duration, rampShare) => {
          const profile = { rate, duration, ramp: duration * rampShare };
          const times = [...arrivalTimes(profile)];
          expect(times.length).toBe(arrivalCount(profile));
          times.forEach((t, i) => {
            expect(t).toBeGreaterThanOrEqual(i === 0 ? 0 : times[i - 1]!);
            expect(t).toBeLessThan(duration + 1e-9);
            expect(arrivalsBy(profile, t)).toBeCloseTo(i, 6);
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('latency percentiles', () => {
  it('takes the nearest rank', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 90)).toBe(90);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(percentile([7], 0)).toBe(7);
    expect(percentile([], 50)).toBeNull();
  });

  it('summarizes unsorted samples numerically, not as strings', () => {
    expect(summarizeLatencies([100, 9, 20, 3.04, 1000])).toEqual({
      count: 5,
      p50: 20,
      p90: 1000,
      p99: 1000,
      max: 1000,
    });
    expect(summarizeLatencies([2.26, 1.01])).toEqual({ count: 2, p50: 1, p90: 2.3, p99: 2.3, max: 2.3 });
    expect(summarizeLatencies([])).toEqual({ count: 0, p50: null, p90: null, p99: null, max: null });
  });
});

describe('scenarios', () => {
  const plans = (name: 'accounts-read' | 'accounts-mixed', seed: number, n: number) => {
    const scenario = createScenario(name, { accounts: 1000, customers: 20, runTag: 't' });
    const random = createRandom(seed);
    return Array.from({ length: n }, () => scenario.nextRequest(random));
  };

  it('reads seeded accounts only, and the same ones for the same seed', () => {
    const seeded = new Set(Array.from({ length: 1000 }, (_, i) => `/accounts/${seededAccountId(i)}`));
    const first = plans('accounts-read', 7, 500);
    expect(first.every((p) => p.method === 'GET' && seeded.has(p.path))).toBe(true);
    expect(plans('accounts-read', 7, 500).map((p) => p.path)).toEqual(first.map((p) => p.path));
    expect(plans('accounts-read', 8, 500).map((p) => p.path)).not.toEqual(first.map((p) => p.path));
  });

  it('mixes about 70% reads, 15% creations, 10% updates and 5% queries, with unique names', () => {
    const mixed = plans('accounts-mixed', 1, 20_000);
    const share = (kind: string) => mixed.filter((p) => p.kind === kind).length / mixed.length;
    expect(share('read')).toBeCloseTo(0.7, 1);
    expect(share('create')).toBeCloseTo(0.15, 1);
    expect(share('update')).toBeCloseTo(0.1, 1);
    expect(share('query')).toBeCloseTo(0.05, 1);
    const names = mixed.filter((p) => p.kind === 'create').map((p) => (p.body as { name: string }).name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.every((n) => n.length >= 1 && n.length <= 100 && !n.startsWith('Person_'))).toBe(true);
    const queries = mixed.filter((p) => p.kind === 'query').map((p) => new URL(p.path, 'http://x').searchParams);
    expect(queries.every((q) => /^Person_\d{1,3}$/.test(q.get('namePrefix') ?? '') && q.get('limit') === '100')).toBe(
      true,
    );
  });
});

describe('loadtest arguments', () => {
  const valid = ['accounts-read', '--url', 'http://127.0.0.1:8080', '--rate', '50', '--duration', '75', '--ramp', '5'];

  it('reads a valid command line, with defaults', () => {
    const parsed = parseLoadtestArgs(valid);
    expect(parsed.kind).toBe('options');
    if (parsed.kind !== 'options') return;
    expect(parsed.options).toMatchObject({
      scenario: 'accounts-read',
      rate: 50,
      duration: 75,
      ramp: 5,
      accounts: 15000,
      customers: 1000,
      seed: 1,
      maxInFlight: 1000,
      timeoutS: 10,
      json: undefined,
    });
    expect(parsed.options.url.toString()).toBe('http://127.0.0.1:8080/');
  });

  it.each([
    [['accounts-write', ...valid.slice(1)], /unknown scenario "accounts-write"/],
    [valid.slice(1), /a scenario is required/],
    [['accounts-read', '--rate', '50', '--duration', '75'], /--url is required/],
    [[...valid, '--url', 'not a url'], /--url must be an http\(s\) URL/],
    [[...valid, '--url', 'ftp://127.0.0.1'], /--url must be an http\(s\) URL/],
    [[...valid, '--rate', '0'], /--rate must be a positive number, got "0"/],
    [[...valid, '--rate', 'fast'], /--rate must be a positive number/],
    [[...valid, '--rate=-5'], /--rate must be a positive number, got "-5"/],
    [['accounts-read', '--url', 'http://h', '--duration', '5'], /--rate is required/],
    [[...valid, '--duration', '0'], /--duration must be a positive number/],
    [[...valid, '--ramp', '80'], /--ramp \(80 s\) must not be longer than --duration \(75 s\)/],
    [[...valid, '--accounts', '1.5'], /--accounts must be a positive integer/],
    [[...valid, '--customers', '0'], /--customers must be an integer in 1\.\.999999999999999, got "0"/],
    [[...valid, '--speed', '3'], /Unknown option '--speed'/],
  ])('refuses %j with exit code 2, one line and the usage', async (args, message) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runLoadtestCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err).toHaveLength(2);
    expect(err[0]).toMatch(message);
    expect(err[1]).toMatch(
      /^usage: npm run tools -- loadtest <accounts-read\|accounts-mixed\|orders-mixed\|orders-contention> --url URL/,
    );
  });

  it('prints help with exit code 0', async () => {
    const out: string[] = [];
    expect(await runLoadtestCommand(['--help'], { out: (l) => out.push(l), err: () => {} })).toBe(0);
    expect(out.join('\n')).toMatch(/accounts-mixed/);
    expect(out.join('\n')).toMatch(/^ {2}orders-mixed /m);
    expect(out.join('\n')).toMatch(/--customers/);
  });
});

// A fake of our own accounts API, in memory, with faults to inject: enough to test the load generator.
interface Account {
  id: string;
  name: string;
  events: { id: string; eventName: string; created: string }[];
}
interface FakeOptions {
  seeded: number;
  /** Every nth read of a seeded account answers 503 with a problem+json code. */
  unavailableEveryNthRead?: number;
  /** Every nth name-prefix query answers 502 with a plain-text body. */
  badGatewayEveryNthQuery?: number;
  /** The nth creation answers 201 but is not stored. */
  forgetCreation?: number;
  /** Requests never answered (until the server closes). */
  hang?: boolean;
}
interface Served {
  route: 'read-seeded' | 'read-other' | 'create' | 'update' | 'query';
  status: number;
  code: string | null;
}

async function startFakeAccountsApi(options: FakeOptions) {
  const accounts = new Map<string, Account>();
  const seededIds = new Set<string>();
  const served: Served[] = [];
  const counters = { reads: 0, queries: 0, creations: 0 };
  const now = () => new Date().toISOString();
  const newAccount = (id: string, name: string): Account => ({
    id,
    name,
    events: [{ id: randomUUID(), eventName: 'CREATED', created: now() }],
  });
  for (let i = 0; i < options.seeded; i += 1) {
    seededIds.add(seededAccountId(i));
    accounts.set(seededAccountId(i), newAccount(seededAccountId(i), seededAccountName(i)));
  }
  const send = (
    res: http.ServerResponse,
    route: Served['route'],
    status: number,
    body: unknown,
    code: string | null = null,
  ) => {
    served.push({ route, status, code });
    const problem = code !== null;
    res.writeHead(status, {
      'content-type': problem
        ? 'application/problem+json'
        : typeof body === 'string'
          ? 'text/plain'
          : 'application/json',
    });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const sendProblem = (res: http.ServerResponse, route: Served['route'], status: number, code: string) =>
    send(res, route, status, { type: `urn:stratum:error:${code}`, title: 'Error', status, code, detail: code }, code);
  const validName = (body: unknown) => {
    const name = (body as { name?: unknown } | null)?.name;
    return typeof name === 'string' && name.length >= 1 && name.length <= 100 ? name : undefined;
  };

  const server = http.createServer(
    (req, res) =>
      void (async () => {
        let raw = '';
        for await (const chunk of req) raw += chunk;
        if (options.hang) return;
        const url = new URL(req.url ?? '/', 'http://fake');
        const idMatch = /^\/accounts\/([^/]+)$/.exec(url.pathname);
        const body = raw ? JSON.parse(raw) : undefined;
        if (req.method === 'GET' && idMatch) {
          const id = idMatch[1]!;
          const route = seededIds.has(id) ? 'read-seeded' : 'read-other';
          if (
            route === 'read-seeded' &&
            options.unavailableEveryNthRead &&
            ++counters.reads % options.unavailableEveryNthRead === 0
          ) {
            return sendProblem(res, route, 503, 'DB.UNAVAILABLE');
          }
          const account = accounts.get(id);
          return account
            ? send(res, route, 200, { ...account, imageData: null })
            : sendProblem(res, route, 404, 'ACCOUNT.NOT_FOUND');
        }
        if (req.method === 'POST' && url.pathname === '/accounts') {
          const name = validName(body);
          if (!name) return sendProblem(res, 'create', 400, 'REQUEST.INVALID');
          const account = newAccount(randomUUID(), name);
          if (++counters.creations !== options.forgetCreation) accounts.set(account.id, account);
          return send(res, 'create', 201, account);
        }
        if (req.method === 'PUT' && idMatch) {
          const name = validName(body);
          if (!name) return sendProblem(res, 'update', 400, 'REQUEST.INVALID');
          const account = accounts.get(idMatch[1]!);
          if (!account) return sendProblem(res, 'update', 404, 'ACCOUNT.NOT_FOUND');
          account.name = name;
          account.events.push({ id: randomUUID(), eventName: 'UPDATED', created: now() });
          return send(res, 'update', 200, account);
        }
        if (req.method === 'GET' && url.pathname === '/accounts') {
          const prefix = url.searchParams.get('namePrefix');
          const limit = Number(url.searchParams.get('limit') ?? 100);
          if (!prefix) return sendProblem(res, 'query', 400, 'REQUEST.INVALID');
          if (options.badGatewayEveryNthQuery && ++counters.queries % options.badGatewayEveryNthQuery === 0)
            return send(res, 'query', 502, 'bad gateway');
          const rows = [...accounts.values()]
            .filter((a) => a.name.startsWith(prefix))
            .map((a) => ({ name: a.name, count: a.events.length }));
          return send(res, 'query', 200, rows.sort((a, b) => a.name.localeCompare(b.name)).slice(0, limit));
        }
        res.writeHead(404).end();
      })(),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accounts,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('loadtest against a fake accounts API', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function run(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-loadtest-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const jsonFile = path.join(dir, 'report.json');
    const code = await runLoadtestCommand([...args, '--json', jsonFile], {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    });
    const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as LoadtestReport;
    return { code, out: out.join('\n'), err: err.join('\n'), report };
  }

  const failure = (report: LoadtestReport, code: string) => report.failures.find((f) => f.code === code);

  it('accounts-read: every scheduled read of a seeded account is sent, answered and counted', async () => {
    const fake = await startFakeAccountsApi({ seeded: 200 });
    cleanups.push(fake.close);
    const profile = { rate: 30, ramp: 0.5, duration: 2 };
    const { code, out, report } = await run([
      'accounts-read',
      '--url',
      fake.url,
      '--rate',
      '30',
      '--duration',
      '2',
      '--ramp',
      '0.5',
      '--accounts',
      '200',
      '--seed',
      '3',
    ]);

    expect(code).toBe(0);
    const expected = arrivalCount(profile);
    expect(expected).toBe(53);
    expect(report.totals).toMatchObject({
      scheduled: expected,
      sent: expected,
      completed: expected,
      ok: expected,
      failed: 0,
    });
    expect(Object.keys(report.kinds)).toEqual(['read']);
    expect(report.totals.latencyMs.count).toBe(expected);
    expect(report.failures).toEqual([]);
    expect(report.readBack).toBeNull();
    expect(fake.served.filter((s) => s.route === 'read-seeded' && s.status === 200)).toHaveLength(expected);
    expect(fake.served).toHaveLength(expected);
    expect(out).toMatch(/scheduled 53, sent 53, completed 53, ok 53, failed 0/);
    expect(out).toMatch(/^kind\s+scheduled\s+sent\s+ok\s+failed\s+p50 ms\s+p90 ms\s+p99 ms\s+max ms$/m);
    expect(out).not.toMatch(/^failure/m);
  });

  it('accounts-mixed: groups failures by problem code or status, and reports a created account the service lost', async () => {
    const fake = await startFakeAccountsApi({
      seeded: 300,
      unavailableEveryNthRead: 5,
      badGatewayEveryNthQuery: 2,
      forgetCreation: 2,
    });
    cleanups.push(fake.close);
    const profile = { rate: 60, ramp: 0.5, duration: 2 };
    const { code, out, report } = await run([
      'accounts-mixed',
      '--url',
      fake.url,
      '--rate',
      '60',
      '--duration',
      '2',
      '--ramp',
      '0.5',
      '--accounts',
      '300',
      '--seed',
      '11',
    ]);

    expect(code).toBe(1);
    const expected = arrivalCount(profile);
    expect(report.totals).toMatchObject({ scheduled: expected, sent: expected, completed: expected });
    expect(report.totals.ok + report.totals.failed).toBe(expected);

    const duringLoad = fake.served.filter((s) => s.route !== 'read-other');
    expect(duringLoad).toHaveLength(expected);
    for (const [kind, route] of [
      ['read', 'read-seeded'],
      ['create', 'create'],
      ['update', 'update'],
      ['query', 'query'],
    ] as const) {
      expect(report.kinds[kind]!.sent, kind).toBe(duringLoad.filter((s) => s.route === route).length);
      expect(report.kinds[kind]!.sent, kind).toBeGreaterThan(0);
    }

    // Every answer the fake gave that was not the expected status is one failure, grouped the same way.
    const expectedStatus = { 'read-seeded': 200, create: 201, update: 200, query: 200 } as Record<string, number>;
    const wrong = duringLoad.filter((s) => s.status !== expectedStatus[s.route]);
    const grouped = new Map<string, number>();
    for (const s of wrong)
      grouped.set(
        `${s.code ?? String(s.status)} ${s.status}`,
        (grouped.get(`${s.code ?? String(s.status)} ${s.status}`) ?? 0) + 1,
      );
    expect(new Map(report.failures.map((f) => [`${f.code} ${f.status}`, f.count]))).toEqual(grouped);
    expect(failure(report, 'DB.UNAVAILABLE')).toMatchObject({ status: 503, byKind: { read: expect.any(Number) } });
    expect(failure(report, 'DB.UNAVAILABLE')!.count).toBeGreaterThan(0);
    expect(failure(report, '502')).toMatchObject({ status: 502, byKind: { query: expect.any(Number) } });
    expect(report.totals.failed).toBe(wrong.length);

    // The second creation was answered 201 and never stored: the read-back finds it missing.
    const created = duringLoad.filter((s) => s.route === 'create' && s.status === 201).length;
    const forgotten = [...report.readBack!.lost];
    expect(report.readBack).toMatchObject({ created, verified: created - 1, unverified: [] });
    expect(forgotten).toHaveLength(1);
    expect(fake.accounts.has(forgotten[0]!)).toBe(false);
    expect(fake.served.filter((s) => s.route === 'read-other')).toHaveLength(created);

    expect(out).toMatch(/^DB\.UNAVAILABLE\s+503\s+\d+\s+read \d+$/m);
    expect(out).toMatch(/^502\s+502\s+\d+\s+query \d+$/m);
    expect(out).toContain(`read back ${created} created accounts: ${created - 1} found, 1 lost, 0 unverified`);
    expect(out).toContain(`lost: ${forgotten[0]}`);
    expect(out).toMatch(/^all\s+/m);
  });

  it('counts requests it could not start, and requests that never finish, as failures', async () => {
    const fake = await startFakeAccountsApi({ seeded: 10, hang: true });
    cleanups.push(fake.close);
    const { code, report, out } = await run([
      'accounts-read',
      '--url',
      fake.url,
      '--rate',
      '20',
      '--duration',
      '1',
      '--accounts',
      '10',
      '--max-in-flight',
      '3',
      '--timeout',
      '0.5',
    ]);

    expect(code).toBe(1);
    const overloaded = failure(report, 'CLIENT.OVERLOADED');
    const timedOut = failure(report, 'CLIENT.TIMEOUT');
    expect(report.totals.scheduled).toBe(20);
    expect(report.totals.completed).toBe(0);
    expect(report.totals.ok).toBe(0);
    expect(overloaded).toMatchObject({ status: null });
    expect(overloaded!.count).toBeGreaterThan(0);
    expect(timedOut!.count).toBe(report.totals.sent);
    expect(report.totals.sent).toBeGreaterThanOrEqual(3);
    expect(overloaded!.count + timedOut!.count).toBe(20);
    expect(out).toMatch(/^CLIENT\.OVERLOADED\s+-\s+\d+\s+read \d+$/m);
  });

  it('reports a refused connection by its network error code', async () => {
    const fake = await startFakeAccountsApi({ seeded: 1 });
    await fake.close();
    const { code, report } = await run([
      'accounts-read',
      '--url',
      fake.url,
      '--rate',
      '10',
      '--duration',
      '0.5',
      '--accounts',
      '1',
    ]);
    expect(code).toBe(1);
    expect(report.failures).toEqual([{ code: 'ECONNREFUSED', status: null, count: 5, byKind: { read: 5 } }]);
  });
});

// A fake of our own orders API behind the HttpTarget port, in memory. While it holds, requests wait until the
// test answers them, in an order it chooses, so changes overlap as they do under load.
interface FakeOrder {
  id: number;
  customerId: number;
  status: string;
  items: unknown[];
}
interface OrdersFaults {
  /** Ids GET /orders/:id answers 404 for, though they exist. */
  hiddenById?: Set<number>;
  /** Ids a listing leaves out. */
  hiddenFromListing?: Set<number>;
  /** Ids a listing shows twice. */
  listedTwice?: Set<number>;
  /** The status GET /orders/:id claims (a stale answer); the listing tells the truth. */
  statusById?: Map<number, string>;
  /** Ids whose GET always answers 503. */
  unavailable?: Set<number>;
  /** Customers whose listing always answers 503. */
  unlistable?: Set<number>;
  /** The nth PATCH (from 1) answers 503, after applying the change or without. */
  failPatch?: Map<number, 'applied' | 'not applied'>;
}

const NEXT: Record<string, string | undefined> = { pending: 'processing', processing: 'completed' };
const MONEY = /^(0|[1-9][0-9]{0,7})(\.[0-9]{1,2})?$/;

function createFakeOrdersTarget(faults: OrdersFaults = {}) {
  const orders = new Map<number, FakeOrder>();
  const served: { method: string; path: string; status: number }[] = [];
  const held: { plan: RequestPlan; resolve: (outcome: Outcome) => void }[] = [];
  let nextId = 1;
  let patches = 0;
  let holding = false;
  const now = new Date().toISOString();
  const full = (o: FakeOrder) => ({ ...o, totalAmount: '1.00', notes: null, createdAt: now, updatedAt: now });
  const add = (customerId: number, status = 'pending') => {
    // Ids as large as the service's, which carry a shard and a bucket.
    const id = 70_000_000 + nextId++ * 1_024;
    orders.set(id, { id, customerId, status, items: [{ id, productId: 1, quantity: 1, price: '1.00' }] });
    return id;
  };

  const answer = (plan: RequestPlan): { status: number; body: unknown } => {
    const url = new URL(plan.path, 'http://fake');
    const idMatch = /^\/orders\/(\d+)$/.exec(url.pathname);
    const id = idMatch ? Number(idMatch[1]) : NaN;
    const problem = (status: number) => ({ status, body: { code: String(status) } });
    if (plan.method === 'POST' && url.pathname === '/orders') {
      const body = plan.body as {
        customerId?: unknown;
        items?: { productId: number; quantity: number; price: string }[];
      };
      const valid =
        Number.isSafeInteger(body.customerId) &&
        (body.customerId as number) >= 1 &&
        Array.isArray(body.items) &&
        body.items.length >= 1 &&
        body.items.every(
          (i) =>
            Number.isSafeInteger(i.productId) &&
            i.productId >= 1 &&
            Number.isSafeInteger(i.quantity) &&
            i.quantity >= 1 &&
            MONEY.test(i.price),
        );
      if (!valid) return problem(400);
      const created = add(body.customerId as number);
      return { status: 201, body: full(orders.get(created)!) };
    }
    if (plan.method === 'GET' && idMatch) {
      if (faults.unavailable?.has(id)) return problem(503);
      const order = orders.get(id);
      if (!order || faults.hiddenById?.has(id)) return problem(404);
      return { status: 200, body: full({ ...order, status: faults.statusById?.get(id) ?? order.status }) };
    }
    if (plan.method === 'PATCH' && idMatch) {
      const order = orders.get(id);
      if (!order) return problem(404);
      const to = (plan.body as { status: string }).status;
      if (NEXT[order.status] !== to && to !== 'cancelled') return problem(409);
      patches += 1;
      const fault = faults.failPatch?.get(patches);
      if (fault !== 'not applied') order.status = to;
      return fault ? problem(503) : { status: 200, body: full(order) };
    }
    if (plan.method === 'GET' && url.pathname === '/orders') {
      const customerId = Number(url.searchParams.get('customerId'));
      if (faults.unlistable?.has(customerId)) return problem(503);
      const limit = Number(url.searchParams.get('limit') ?? 50);
      const before = url.searchParams.get('cursor');
      const mine = [...orders.values()]
        .filter((o) => o.customerId === customerId && !faults.hiddenFromListing?.has(o.id))
        .sort((a, b) => b.id - a.id)
        .flatMap((o) => (faults.listedTwice?.has(o.id) ? [o, o] : [o]))
        .filter((o) => before === null || o.id < Number(before));
      const page = mine.slice(0, limit);
      return {
        status: 200,
        body: {
          items: page.map(full),
          nextCursor: page.length === limit ? String(page.at(-1)!.id) : null,
          missingShards: [],
        },
      };
    }
    return problem(404);
  };

  // As the real target: the body goes through JSON, an unexpected status fails with its code, `accept` may refuse.
  const respond = (plan: RequestPlan, resolve: (outcome: Outcome) => void) => {
    const { status, body } = answer(plan);
    served.push({ method: plan.method, path: plan.path, status });
    if (status !== plan.expectStatus) return resolve({ ok: false, code: String(status), status, latencyMs: 1 });
    if (plan.accept && !plan.accept(JSON.parse(JSON.stringify(body))))
      return resolve({ ok: false, code: 'CLIENT.INVALID_RESPONSE', status, latencyMs: 1 });
    resolve({ ok: true, latencyMs: 1, degraded: false });
  };
  const target: HttpTarget = {
    send: (plan) =>
      new Promise<Outcome>((resolve) => (holding ? held.push({ plan, resolve }) : respond(plan, resolve))),
    close: async () => {},
  };
  return {
    target,
    orders,
    served,
    held,
    add,
    hold: (on: boolean) => {
      holding = on;
    },
    answerHeld: (index: number) => {
      const [request] = held.splice(index, 1);
      respond(request!.plan, request!.resolve);
    },
  };
}

/**
 * Drives orders-mixed as the runner does (plan, send, `onSettled`), with up to `inFlight` requests held and
 * answered in a random order. Checks each plan against what the fake has acknowledged at that moment.
 */
async function driveOrdersMixed(options: {
  requests: number;
  seed: number;
  customers: number;
  inFlight: number;
  faults?: OrdersFaults;
  neverSentEveryNthChange?: number;
}) {
  const fake = createFakeOrdersTarget(options.faults);
  const scenario = createScenario('orders-mixed', { accounts: 1, customers: options.customers, runTag: 't' });
  const random = createRandom(options.seed);
  const answerOrder = createRandom(options.seed + 1);
  const changing = new Set<string>();
  const violations: string[] = [];
  const plans: RequestPlan[] = [];
  const neverSent: { id: string; to: string }[] = [];
  const settled: Promise<void>[] = [];
  let changes = 0;
  fake.hold(true);
  for (let i = 0; i < options.requests; i += 1) {
    const plan = scenario.nextRequest(random);
    plans.push(plan);
    const id = /^\/orders\/(\d+)$/.exec(plan.path)?.[1];
    if (id !== undefined && !fake.orders.has(Number(id)))
      violations.push(`${plan.method} ${plan.path}: not an order whose creation was answered`);
    if (plan.method === 'PATCH') {
      const to = (plan.body as { status: string }).status;
      if (changing.has(id!)) violations.push(`PATCH ${plan.path}: a change of it is in flight`);
      if (NEXT[fake.orders.get(Number(id))?.status ?? ''] !== to)
        violations.push(`PATCH ${plan.path} to ${to}: not its next status`);
      changes += 1;
      if (options.neverSentEveryNthChange && changes % options.neverSentEveryNthChange === 0) {
        neverSent.push({ id: id!, to });
        plan.onSettled?.(null); // as the runner does when too many are in flight
        continue;
      }
      changing.add(id!);
    }
    settled.push(
      fake.target.send(plan, 0).then((outcome) => {
        if (plan.method === 'PATCH') changing.delete(id!);
        plan.onSettled?.(outcome);
      }),
    );
    while (fake.held.length > options.inFlight) fake.answerHeld(Math.floor(answerOrder() * fake.held.length));
    await new Promise((resolve) => setImmediate(resolve));
  }
  while (fake.held.length > 0) fake.answerHeld(Math.floor(answerOrder() * fake.held.length));
  await Promise.all(settled);
  fake.hold(false);
  return { fake, scenario, plans, violations, neverSent };
}

describe('orders-mixed requests', () => {
  it('mixes reads, creations, status changes and listings, addressing only orders it created, one change of an order at a time', async () => {
    const { fake, scenario, plans, violations, neverSent } = await driveOrdersMixed({
      requests: 4_000,
      seed: 5,
      customers: 20,
      inFlight: 24,
      neverSentEveryNthChange: 10,
    });

    expect(violations).toEqual([]);
    const share = (kind: string) => plans.filter((p) => p.kind === kind).length / plans.length;
    expect(share('read')).toBeCloseTo(0.4, 1);
    expect(share('create')).toBeCloseTo(0.25, 1);
    expect(share('change')).toBeCloseTo(0.25, 1);
    expect(share('list')).toBeCloseTo(0.1, 1);
    expect(plans[0]!.kind).toBe('create'); // nothing to read or change yet
    expect(new Set(plans.map((p) => `${p.kind} ${p.method}`))).toEqual(
      new Set(['read GET', 'create POST', 'change PATCH', 'list GET']),
    );

    const creations = plans
      .filter((p) => p.kind === 'create')
      .map((p) => p.body as { customerId: number; items: { productId: number; quantity: number; price: string }[] });
    expect(creations.every((c) => Number.isInteger(c.customerId) && c.customerId >= 1 && c.customerId <= 20)).toBe(
      true,
    );
    expect(new Set(creations.map((c) => c.customerId)).size).toBe(20);
    expect(new Set(creations.map((c) => c.items.length))).toEqual(new Set([1, 2]));
    expect(
      creations
        .flatMap((c) => c.items)
        .every(
          (i) => i.productId >= 1 && i.productId <= 1_000 && i.quantity >= 1 && i.quantity <= 5 && MONEY.test(i.price),
        ),
    ).toBe(true);
    const listed = plans
      .filter((p) => p.kind === 'list')
      .map((p) => /^\/orders\?customerId=(\d+)&limit=50$/.exec(p.path)?.[1]);
    expect(listed.every((c) => c !== undefined && Number(c) >= 1 && Number(c) <= 20)).toBe(true);

    // Every change sent answered 200; a change never sent left its order free to change later.
    const patches = fake.served.filter((s) => s.method === 'PATCH');
    expect(patches.length).toBeGreaterThan(500);
    expect(patches.every((s) => s.status === 200)).toBe(true);
    expect(fake.served.every((s) => s.status < 300)).toBe(true);
    expect(neverSent.length).toBeGreaterThan(0);
    expect(neverSent.some((n) => patches.some((s) => s.path === `/orders/${n.id}`))).toBe(true);
    const statuses = [...fake.orders.values()].map((o) => o.status);
    expect(statuses.filter((s) => s === 'completed').length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 'processing').length).toBeGreaterThan(0);

    const readBack = await scenario.readBack!(fake.target);
    expect(readBack).toEqual({
      noun: 'orders',
      created: fake.orders.size,
      verified: fake.orders.size,
      lost: [],
      wrongState: [],
      duplicated: [],
      unverified: [],
    });
  });

  it('expects either status of an order whose change failed, and never changes it again', async () => {
    const failPatch = new Map([
      [3, 'applied'],
      [5, 'not applied'],
    ] as const);
    const { fake, scenario, violations } = await driveOrdersMixed({
      requests: 400,
      seed: 9,
      customers: 5,
      inFlight: 4,
      faults: { failPatch },
    });

    expect(violations).toEqual([]);
    const patches = fake.served.filter((s) => s.method === 'PATCH');
    const failed = patches.filter((s) => s.status === 503);
    expect(failed).toHaveLength(2);
    for (const f of failed) expect(patches.filter((s) => s.path === f.path).at(-1)).toBe(f);
    expect(patches.filter((s) => s.status !== 503).every((s) => s.status === 200)).toBe(true);
    const readBack = await scenario.readBack!(fake.target);
    expect(readBack).toMatchObject({
      created: fake.orders.size,
      verified: fake.orders.size,
      lost: [],
      wrongState: [],
      duplicated: [],
      unverified: [],
    });
  });
});

describe('orders read-back verdicts', () => {
  const listing = (entries: [string, string[]][]): Listing => ({ kind: 'listed', statuses: new Map(entries) });
  const found = (status: string): Fetched => ({ kind: 'found', body: { id: 7, status } });
  const order: ExpectedOrder = { id: '7', customerId: 3, status: 'processing' };

  it.each([
    ['found once as left', found('processing'), listing([['7', ['processing']]]), { kind: 'verified' }],
    ['answered 404 by id', { kind: 'missing' }, listing([['7', ['processing']]]), { kind: 'lost' }],
    ['missing from the listing', found('processing'), listing([['8', ['pending']]]), { kind: 'lost' }],
    ['missing from the listing, the GET failing', { kind: 'failed', code: '503' }, listing([]), { kind: 'lost' }],
    [
      'answered 404 by id, the listing failing',
      { kind: 'missing' },
      { kind: 'failed', code: 'SHARD.UNAVAILABLE' },
      { kind: 'lost' },
    ],
    [
      'listed twice',
      found('processing'),
      listing([['7', ['processing', 'processing']]]),
      { kind: 'duplicated', count: 2 },
    ],
    [
      'behind by id',
      found('pending'),
      listing([['7', ['processing']]]),
      { kind: 'wrong-state', expected: 'processing', found: 'pending', where: 'GET /orders/:id' },
    ],
    [
      'behind in the listing',
      found('processing'),
      listing([['7', ['pending']]]),
      { kind: 'wrong-state', expected: 'processing', found: 'pending', where: 'GET /orders?customerId=3' },
    ],
    [
      'the GET failing',
      { kind: 'failed', code: 'CLIENT.TIMEOUT' },
      listing([['7', ['processing']]]),
      { kind: 'unverified', code: 'CLIENT.TIMEOUT' },
    ],
    ['the listing failing', found('processing'), { kind: 'failed', code: '503' }, { kind: 'unverified', code: '503' }],
  ] as [string, Fetched, Listing, unknown][])('%s', (_, byId, list, verdict) => {
    expect(judgeOrder(order, byId, list)).toEqual(verdict);
  });

  it('takes either status after an unconfirmed change, and no third', () => {
    const unsure: ExpectedOrder = { id: '7', customerId: 3, status: 'pending', unconfirmed: 'processing' };
    expect(judgeOrder(unsure, found('pending'), listing([['7', ['pending']]]))).toEqual({ kind: 'verified' });
    expect(judgeOrder(unsure, found('processing'), listing([['7', ['processing']]]))).toEqual({ kind: 'verified' });
    expect(judgeOrder(unsure, found('completed'), listing([['7', ['completed']]]))).toEqual({
      kind: 'wrong-state',
      expected: 'pending or processing',
      found: 'completed',
      where: 'GET /orders/:id',
    });
  });

  it('reads every listing page and each order once, and reports each fault by its id', async () => {
    const faults: Required<
      Pick<
        OrdersFaults,
        'hiddenById' | 'hiddenFromListing' | 'listedTwice' | 'statusById' | 'unavailable' | 'unlistable'
      >
    > = {
      hiddenById: new Set(),
      hiddenFromListing: new Set(),
      listedTwice: new Set(),
      statusById: new Map(),
      unavailable: new Set(),
      unlistable: new Set([9]),
    };
    const fake = createFakeOrdersTarget(faults);
    const expected: ExpectedOrder[] = [];
    const expect1 = (customerId: number, status: string, actual = status, extra: Partial<ExpectedOrder> = {}) => {
      const id = fake.add(customerId, actual);
      expected.push({ id: String(id), customerId, status, ...extra });
      return id;
    };
    // Customer 2 has 1,203 orders: three pages of 500.
    for (let i = 0; i < 1_203; i += 1) expect1(2, 'completed');
    expect1(1, 'pending');
    expect1(1, 'pending', 'processing', { unconfirmed: 'processing' }); // found as the change that failed left it
    const third = expect1(1, 'pending', 'completed', { unconfirmed: 'processing' });
    const neverStored = 99;
    expected.push({ id: String(neverStored), customerId: 1, status: 'pending' });
    const noGet = expect1(3, 'processing');
    faults.hiddenById.add(noGet);
    const unlisted = expect1(3, 'processing');
    faults.hiddenFromListing.add(unlisted);
    const twice = expect1(4, 'completed');
    faults.listedTwice.add(twice);
    const staleGet = expect1(4, 'processing');
    faults.statusById.set(staleGet, 'pending');
    const staleListing = expect1(4, 'processing', 'cancelled');
    faults.statusById.set(staleListing, 'processing');
    const unreadable = expect1(5, 'pending');
    faults.unavailable.add(unreadable);
    const ofUnlistable = expect1(9, 'pending');

    const result = await readBackOrders(fake.target, expected, { retryDelayMs: 1 });

    expect(result.created).toBe(1_203 + 11);
    expect(result.verified).toBe(1_203 + 2);
    expect(new Set(result.lost)).toEqual(new Set([String(neverStored), String(noGet), String(unlisted)]));
    expect(result.duplicated).toEqual([{ id: String(twice), count: 2 }]);
    expect(result.wrongState).toHaveLength(3);
    expect(result.wrongState).toEqual(
      expect.arrayContaining([
        { id: String(third), expected: 'pending or processing', found: 'completed', where: 'GET /orders/:id' },
        { id: String(staleGet), expected: 'processing', found: 'pending', where: 'GET /orders/:id' },
        { id: String(staleListing), expected: 'processing', found: 'cancelled', where: 'GET /orders?customerId=4' },
      ]),
    );
    expect(new Set(result.unverified)).toEqual(
      new Set([
        { id: String(unreadable), code: '503' },
        { id: String(ofUnlistable), code: '503' },
      ]),
    );

    // Each customer's listing read page by page, once; each order by id once, the failing ones three times.
    const listings = fake.served.filter((s) => s.path.startsWith('/orders?'));
    expect(listings.filter((s) => s.path.startsWith('/orders?customerId=2&'))).toHaveLength(3);
    expect(listings.filter((s) => s.path.startsWith('/orders?customerId=9&'))).toHaveLength(3);
    expect(listings).toHaveLength(3 + 1 + 1 + 1 + 1 + 3);
    expect(fake.served.filter((s) => s.path === `/orders/${unreadable}`)).toHaveLength(3);
    expect(fake.served.filter((s) => /^\/orders\/\d+$/.test(s.path))).toHaveLength(expected.length + 2);
  });

  it('fails the run and prints each fault when an order is lost, wrong or duplicated', () => {
    const parsed = parseLoadtestArgs([
      'orders-mixed',
      '--url',
      'http://127.0.0.1:1',
      '--rate',
      '1',
      '--duration',
      '1',
      '--customers',
      '5',
    ]);
    if (parsed.kind !== 'options') throw new Error(parsed.kind);
    const clean = { noun: 'orders', created: 3, verified: 3, lost: [], wrongState: [], duplicated: [], unverified: [] };
    expect(isCleanRun(buildReport(parsed.options, createTally(['read']), clean, 1))).toBe(true);
    for (const fault of [
      { lost: ['5'] },
      { wrongState: [{ id: '5', expected: 'completed', found: 'processing', where: 'GET /orders/:id' }] },
      { duplicated: [{ id: '5', count: 2 }] },
      { unverified: [{ id: '5', code: '503' }] },
    ]) {
      expect(
        isCleanRun(buildReport(parsed.options, createTally(['read']), { ...clean, verified: 2, ...fault }, 1)),
        JSON.stringify(fault),
      ).toBe(false);
    }
    const report = buildReport(
      parsed.options,
      createTally(['read']),
      {
        noun: 'orders',
        created: 40,
        verified: 35,
        lost: ['1100', '900'],
        unverified: [{ id: '12', code: 'CLIENT.TIMEOUT' }],
        wrongState: [{ id: '33', expected: 'completed', found: 'processing', where: 'GET /orders?customerId=4' }],
        duplicated: [{ id: '44', count: 2 }],
      },
      1,
    );
    expect(report.customers).toBe(5);
    const out = formatReport(report).join('\n');
    expect(out).toContain(
      'read back 40 created orders: 35 found once as left, 2 lost, 1 in a wrong state, 1 duplicated, 1 unverified',
    );
    expect(out).toContain('lost: 900, 1100');
    expect(out).toContain('wrong state: 33 is processing, expected completed (GET /orders?customerId=4)');
    expect(out).toContain('duplicated: 44 listed 2 times');
    expect(out).toContain('unverified: 12 (CLIENT.TIMEOUT)');
  });
});

describe('orders-mixed against the real app on two shards', () => {
  let db: TestDatabase;
  let stratum: TestApp;
  let url: string;
  const firstRun = new Set<string>();

  beforeAll(async () => {
    db = await createTestDatabase();
    stratum = await startTestApp(db, { ordersShardCount: 2 });
    url = await stratum.app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await stratum?.close();
    await db?.drop();
  });

  const rowsOnShards = async () =>
    (
      await Promise.all(
        (await db.shards()).map(
          (sql) => sql<{ id: string; status: string }[]>`select id::text, status from orders.orders`,
        ),
      )
    ).flat();

  it('runs clean: every request answered as expected, every order read back once in its last status', async () => {
    const out: string[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-loadtest-'));
    try {
      const jsonFile = path.join(dir, 'report.json');
      const code = await runLoadtestCommand(
        [
          'orders-mixed',
          '--url',
          url,
          '--rate',
          '80',
          '--duration',
          '3',
          '--customers',
          '25',
          '--seed',
          '4',
          '--json',
          jsonFile,
        ],
        { out: (l) => out.push(l), err: () => {} },
      );
      const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as LoadtestReport;

      expect(report.failures).toEqual([]);
      expect(code).toBe(0);
      expect(report.totals).toMatchObject({ scheduled: 240, sent: 240, ok: 240, failed: 0 });
      for (const kind of ['read', 'create', 'change', 'list']) expect(report.kinds[kind]!.ok, kind).toBeGreaterThan(0);
      const created = report.kinds.create!.ok;
      expect(report.readBack).toEqual({
        noun: 'orders',
        created,
        verified: created,
        lost: [],
        wrongState: [],
        duplicated: [],
        unverified: [],
      });

      // The database agrees: the run's orders and no others, each moved one step per acknowledged change.
      const rows = await rowsOnShards();
      expect(rows).toHaveLength(created);
      for (const r of rows) firstRun.add(r.id);
      const steps = rows.reduce(
        (sum, r) => sum + ({ pending: 0, processing: 1, completed: 2 } as Record<string, number>)[r.status]!,
        0,
      );
      expect(steps).toBe(report.kinds.change!.ok);
      expect(out.join('\n')).toContain(
        `read back ${created} created orders: ${created} found once as left, 0 lost, 0 in a wrong state, 0 duplicated, 0 unverified`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("finds an order deleted behind the service's back, and one whose status was changed behind it", async () => {
    const scenario = createScenario('orders-mixed', { accounts: 1, customers: 10, runTag: 't' });
    const target = openHttpTarget(new URL(url), 50, 10_000);
    try {
      const tally = await runOpenModel(scenario, target, createRandom(8), {
        profile: { rate: 60, ramp: 0, duration: 1 },
        maxInFlight: 50,
      });
      expect(Object.values(tally.kinds).reduce((sum, k) => sum + k.failed, 0)).toBe(0);
      const before = await scenario.readBack!(target);
      expect(before.verified).toBe(before.created);

      const rows = await rowsOnShards();
      expect(rows.length).toBeGreaterThan(before.created); // the first test's orders are there too
      const run = rows.filter((r) => !firstRun.has(r.id));
      expect(run).toHaveLength(before.created);
      const [deleted, changed] = [run[0]!, run[1]!];
      const onEveryShard = (query: (sql: Sql) => Promise<unknown>) =>
        db.shards().then((shards) => Promise.all(shards.map(query)));
      await onEveryShard((sql) => sql`delete from orders.orders where id = ${deleted.id}`);
      await onEveryShard((sql) => sql`update orders.orders set status = 'cancelled' where id = ${changed.id}`);

      const after = await scenario.readBack!(target);
      expect(after.created).toBe(before.created);
      expect(after.verified).toBe(before.created - 2);
      expect(after.lost).toEqual([deleted.id]);
      // GET /orders/:id may still answer from the read cache; the listing reads the shard.
      expect(after.wrongState).toHaveLength(1);
      expect(after.wrongState![0]).toMatchObject({ id: changed.id, expected: changed.status, found: 'cancelled' });
      expect(after.duplicated).toEqual([]);
      expect(after.unverified).toEqual([]);
    } finally {
      await target.close();
    }
  });
});
