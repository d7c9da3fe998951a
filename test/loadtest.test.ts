import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { seededAccountId, seededAccountName } from '../src/contexts/accounts/seed-ids.ts';
import { runLoadtestCommand } from '../src/cli/loadtest/command.ts';
import { parseLoadtestArgs } from '../src/cli/loadtest/parse-args.ts';
import { percentile, summarizeLatencies } from '../src/cli/loadtest/percentiles.ts';
import { createRandom } from '../src/cli/loadtest/random.ts';
import type { LoadtestReport } from '../src/cli/loadtest/report.ts';
import { createScenario } from '../src/cli/loadtest/scenarios.ts';
import { arrivalCount, arrivalsBy, arrivalTime, arrivalTimes } from '../src/cli/loadtest/schedule.ts';

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
    fc.assert(fc.property(
      fc.double({ min: 0.1, max: 200, noNaN: true }), fc.double({ min: 0.1, max: 20, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }),
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
    ), { numRuns: 200 });
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
    expect(summarizeLatencies([100, 9, 20, 3.04, 1000])).toEqual({ count: 5, p50: 20, p90: 1000, p99: 1000, max: 1000 });
    expect(summarizeLatencies([2.26, 1.01])).toEqual({ count: 2, p50: 1, p90: 2.3, p99: 2.3, max: 2.3 });
    expect(summarizeLatencies([])).toEqual({ count: 0, p50: null, p90: null, p99: null, max: null });
  });
});

describe('scenarios', () => {
  const plans = (name: 'accounts-read' | 'accounts-mixed', seed: number, n: number) => {
    const scenario = createScenario(name, { accounts: 1000, runTag: 't' });
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
    expect(queries.every((q) => /^Person_\d{1,3}$/.test(q.get('namePrefix') ?? '') && q.get('limit') === '100')).toBe(true);
  });
});

describe('loadtest arguments', () => {
  const valid = ['accounts-read', '--url', 'http://127.0.0.1:8080', '--rate', '50', '--duration', '75', '--ramp', '5'];

  it('reads a valid command line, with defaults', () => {
    const parsed = parseLoadtestArgs(valid);
    expect(parsed.kind).toBe('options');
    if (parsed.kind !== 'options') return;
    expect(parsed.options).toMatchObject({ scenario: 'accounts-read', rate: 50, duration: 75, ramp: 5, accounts: 15000, seed: 1, maxInFlight: 1000, timeoutS: 10, json: undefined });
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
    [[...valid, '--speed', '3'], /Unknown option '--speed'/],
  ])('refuses %j with exit code 2, one line and the usage', async (args, message) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runLoadtestCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err).toHaveLength(2);
    expect(err[0]).toMatch(message);
    expect(err[1]).toMatch(/^usage: stratum loadtest <accounts-read\|accounts-mixed> --url URL/);
  });

  it('prints help with exit code 0', async () => {
    const out: string[] = [];
    expect(await runLoadtestCommand(['--help'], { out: (l) => out.push(l), err: () => {} })).toBe(0);
    expect(out.join('\n')).toMatch(/accounts-mixed/);
  });
});

// A fake of our own accounts API, in memory, with faults to inject: enough to test the load generator.
interface Account { id: string; name: string; events: { id: string; eventName: string; created: string }[] }
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
interface Served { route: 'read-seeded' | 'read-other' | 'create' | 'update' | 'query'; status: number; code: string | null }

async function startFakeAccountsApi(options: FakeOptions) {
  const accounts = new Map<string, Account>();
  const seededIds = new Set<string>();
  const served: Served[] = [];
  const counters = { reads: 0, queries: 0, creations: 0 };
  const now = () => new Date().toISOString();
  const newAccount = (id: string, name: string): Account => ({ id, name, events: [{ id: randomUUID(), eventName: 'CREATED', created: now() }] });
  for (let i = 0; i < options.seeded; i += 1) {
    seededIds.add(seededAccountId(i));
    accounts.set(seededAccountId(i), newAccount(seededAccountId(i), seededAccountName(i)));
  }
  const send = (res: http.ServerResponse, route: Served['route'], status: number, body: unknown, code: string | null = null) => {
    served.push({ route, status, code });
    const problem = code !== null;
    res.writeHead(status, { 'content-type': problem ? 'application/problem+json' : typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const sendProblem = (res: http.ServerResponse, route: Served['route'], status: number, code: string) =>
    send(res, route, status, { type: `urn:stratum:error:${code}`, title: 'Error', status, code, detail: code }, code);
  const validName = (body: unknown) => {
    const name = (body as { name?: unknown } | null)?.name;
    return typeof name === 'string' && name.length >= 1 && name.length <= 100 ? name : undefined;
  };

  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    if (options.hang) return;
    const url = new URL(req.url ?? '/', 'http://fake');
    const idMatch = /^\/accounts\/([^/]+)$/.exec(url.pathname);
    const body = raw ? JSON.parse(raw) : undefined;
    if (req.method === 'GET' && idMatch) {
      const id = idMatch[1]!;
      const route = seededIds.has(id) ? 'read-seeded' : 'read-other';
      if (route === 'read-seeded' && options.unavailableEveryNthRead && ++counters.reads % options.unavailableEveryNthRead === 0) {
        return sendProblem(res, route, 503, 'DB.UNAVAILABLE');
      }
      const account = accounts.get(id);
      return account ? send(res, route, 200, { ...account, imageData: null }) : sendProblem(res, route, 404, 'ACCOUNT.NOT_FOUND');
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
      if (options.badGatewayEveryNthQuery && ++counters.queries % options.badGatewayEveryNthQuery === 0) return send(res, 'query', 502, 'bad gateway');
      const rows = [...accounts.values()].filter((a) => a.name.startsWith(prefix)).map((a) => ({ name: a.name, count: a.events.length }));
      return send(res, 'query', 200, rows.sort((a, b) => a.name.localeCompare(b.name)).slice(0, limit));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accounts,
    served,
    close: () => new Promise<void>((resolve) => {
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
    const code = await runLoadtestCommand([...args, '--json', jsonFile], { out: (l) => out.push(l), err: (l) => err.push(l) });
    const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as LoadtestReport;
    return { code, out: out.join('\n'), err: err.join('\n'), report };
  }

  const failure = (report: LoadtestReport, code: string) => report.failures.find((f) => f.code === code);

  it('accounts-read: every scheduled read of a seeded account is sent, answered and counted', async () => {
    const fake = await startFakeAccountsApi({ seeded: 200 });
    cleanups.push(fake.close);
    const profile = { rate: 30, ramp: 0.5, duration: 2 };
    const { code, out, report } = await run(['accounts-read', '--url', fake.url, '--rate', '30', '--duration', '2', '--ramp', '0.5', '--accounts', '200', '--seed', '3']);

    expect(code).toBe(0);
    const expected = arrivalCount(profile);
    expect(expected).toBe(53);
    expect(report.totals).toMatchObject({ scheduled: expected, sent: expected, completed: expected, ok: expected, failed: 0 });
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
    const fake = await startFakeAccountsApi({ seeded: 300, unavailableEveryNthRead: 5, badGatewayEveryNthQuery: 2, forgetCreation: 2 });
    cleanups.push(fake.close);
    const profile = { rate: 60, ramp: 0.5, duration: 2 };
    const { code, out, report } = await run(['accounts-mixed', '--url', fake.url, '--rate', '60', '--duration', '2', '--ramp', '0.5', '--accounts', '300', '--seed', '11']);

    expect(code).toBe(1);
    const expected = arrivalCount(profile);
    expect(report.totals).toMatchObject({ scheduled: expected, sent: expected, completed: expected });
    expect(report.totals.ok + report.totals.failed).toBe(expected);

    const duringLoad = fake.served.filter((s) => s.route !== 'read-other');
    expect(duringLoad).toHaveLength(expected);
    for (const [kind, route] of [['read', 'read-seeded'], ['create', 'create'], ['update', 'update'], ['query', 'query']] as const) {
      expect(report.kinds[kind]!.sent, kind).toBe(duringLoad.filter((s) => s.route === route).length);
      expect(report.kinds[kind]!.sent, kind).toBeGreaterThan(0);
    }

    // Every answer the fake gave that was not the expected status is one failure, grouped the same way.
    const expectedStatus = { 'read-seeded': 200, create: 201, update: 200, query: 200 } as Record<string, number>;
    const wrong = duringLoad.filter((s) => s.status !== expectedStatus[s.route]);
    const grouped = new Map<string, number>();
    for (const s of wrong) grouped.set(`${s.code ?? String(s.status)} ${s.status}`, (grouped.get(`${s.code ?? String(s.status)} ${s.status}`) ?? 0) + 1);
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
    const { code, report, out } = await run(['accounts-read', '--url', fake.url, '--rate', '20', '--duration', '1', '--accounts', '10', '--max-in-flight', '3', '--timeout', '0.5']);

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
    const { code, report } = await run(['accounts-read', '--url', fake.url, '--rate', '10', '--duration', '0.5', '--accounts', '1']);
    expect(code).toBe(1);
    expect(report.failures).toEqual([{ code: 'ECONNREFUSED', status: null, count: 5, byKind: { read: 5 } }]);
  });
});
