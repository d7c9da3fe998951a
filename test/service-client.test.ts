import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { withDeadline } from '../src/platform/db/deadline-scope.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';
import {
  DEADLINE_HEADER,
  createServiceClient,
  isDependencyUnavailable,
  type ServiceClient,
  type ServiceClientOptions,
} from '../src/platform/remote/service-client.ts';

/** A route of a test instance: answer it, or return false to fall through to the default answer. */
type Handler = (req: IncomingMessage, res: ServerResponse, instance: TestInstance) => boolean | void;

/** A real HTTP server as one instance of the dependency. */
interface TestInstance {
  url: string;
  port: number;
  /** User requests received (health checks not included), as `METHOD /path`. */
  requests: string[];
  healthChecks: number;
  /** Sockets open now, on the server side. */
  sockets: Set<Socket>;
  /** Kills it: stops listening and destroys every connection, keep-alive ones included. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

const WAIT = { timeout: 10_000, interval: 20 };
const servers = new Set<TestInstance>();
const clients = new Set<ServiceClient>();

async function startInstance(handler?: Handler, port = 0): Promise<TestInstance> {
  let server: Server | undefined;
  const instance: TestInstance = {
    url: '',
    port,
    requests: [],
    healthChecks: 0,
    sockets: new Set(),
    async start() {
      const s = createServer((req, res) => {
        if (req.url === '/healthz') {
          instance.healthChecks++;
          res.end('ok');
          return;
        }
        instance.requests.push(`${req.method} ${req.url}`);
        if (handler && handler(req, res, instance) !== false) return;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ port: instance.port, deadline: req.headers[DEADLINE_HEADER] ?? null }));
      });
      // Idle keep-alive connections would otherwise end by themselves after 5 s and hide a pool left open.
      s.keepAliveTimeout = 120_000;
      s.on('connection', (socket: Socket) => {
        instance.sockets.add(socket);
        socket.on('close', () => instance.sockets.delete(socket));
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(instance.port, '127.0.0.1', () => resolve());
      });
      server = s;
      instance.port = (s.address() as AddressInfo).port;
      instance.url = `http://127.0.0.1:${instance.port}`;
    },
    async stop() {
      const s = server;
      if (!s) return;
      server = undefined;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      s.closeAllConnections();
      for (const socket of instance.sockets) socket.destroy();
      await closed;
    },
  };
  await instance.start();
  servers.add(instance);
  return instance;
}

/** A port nothing listens on: connections to it are refused. */
async function refusedUrl(): Promise<string> {
  const instance = await startInstance();
  await instance.stop();
  servers.delete(instance);
  return instance.url;
}

/** A client with short health intervals, so tests wait little for a state. */
function client(options: Partial<ServiceClientOptions> & { urls: readonly string[] }): ServiceClient {
  const c = createServiceClient({
    name: 'quotes',
    healthIntervalMs: 50,
    healthTimeoutMs: 1000,
    halfOpenAfterMs: 200,
    backoffMs: 10,
    attemptTimeoutMs: 5000,
    ...options,
  });
  clients.add(c);
  return c;
}

function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (answer) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(answer)}`);
    },
    (error: unknown) => error,
  );
}

const inRotation = (c: ServiceClient, url: string) => c.state().find((s) => s.url === url)?.inRotation;

afterEach(async () => {
  await Promise.all([...clients].map((c) => c.close()));
  clients.clear();
  await Promise.all([...servers].map((s) => s.stop()));
  servers.clear();
});

describe('service client: balancing', () => {
  it('spreads sequential calls over both instances', async () => {
    const a = await startInstance();
    const b = await startInstance();
    const quotes = client({ urls: [a.url, b.url] });
    const answeredBy = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const answer = await quotes.request<{ port: number }>({ path: '/quote' });
      expect(answer.status).toBe(200);
      expect(answer.attempts).toBe(1);
      answeredBy.set(answer.instance, (answeredBy.get(answer.instance) ?? 0) + 1);
    }
    // Ties go in turn: an idle system spreads evenly.
    expect(answeredBy.get(a.url)).toBeGreaterThanOrEqual(10);
    expect(answeredBy.get(b.url)).toBeGreaterThanOrEqual(10);
    expect(a.requests.length + b.requests.length).toBe(40);
  });

  it('sends to the idle instance while the other one is busy (least outstanding)', async () => {
    const held: Array<() => void> = [];
    const slow = await startInstance((_req, res) => {
      held.push(() => res.end('late'));
    });
    const fast = await startInstance();
    const quotes = client({ urls: [slow.url, fast.url], attemptTimeoutMs: 60_000 });
    // Two at once: one each (a tie, then the one with nothing in flight).
    const first = [quotes.request({ path: '/quote' }), quotes.request({ path: '/quote' })];
    await vi.waitFor(() => expect(held).toHaveLength(1), WAIT);
    const answeredBy: string[] = [];
    for (let i = 0; i < 20; i++) answeredBy.push((await quotes.request({ path: '/quote' })).instance);
    // Round robin would have sent every other one to the slow instance (and waited for it).
    expect(answeredBy.every((url) => url === fast.url)).toBe(true);
    expect(slow.requests).toHaveLength(1);
    expect(quotes.state().find((s) => s.url === slow.url)?.outstanding).toBe(1);
    for (const release of held) release();
    const answers = await Promise.all(first);
    expect(answers.map((a) => a.instance).sort()).toEqual([slow.url, fast.url].sort());
  });
});

describe('service client: instances that die', () => {
  it('retries on the other instance, takes the dead one out and puts it back when it answers again', async () => {
    const a = await startInstance();
    const b = await startInstance();
    const changes: Array<[string, boolean]> = [];
    const quotes = client({ urls: [a.url, b.url], onInstanceChange: (url, up) => changes.push([url, up]) });
    for (let i = 0; i < 4; i++) await quotes.request({ path: '/warm' });
    expect(a.requests.length).toBeGreaterThan(0);

    await a.stop();
    for (let i = 0; i < 10; i++) {
      const answer = await quotes.request({ path: '/during' });
      expect(answer.status).toBe(200);
      expect(answer.instance).toBe(b.url);
    }
    await vi.waitFor(() => expect(inRotation(quotes, a.url)).toBe(false), WAIT);
    expect(quotes.state().find((s) => s.url === a.url)?.lastError).toBeDefined();
    expect(changes).toContainEqual([a.url, false]);
    // Out of rotation: no call is even tried on it (a try would be refused and show as a second attempt).
    for (let i = 0; i < 10; i++) {
      const answer = await quotes.request({ path: '/out' });
      expect(answer.instance).toBe(b.url);
      expect(answer.attempts).toBe(1);
    }

    await a.start();
    await vi.waitFor(() => expect(inRotation(quotes, a.url)).toBe(true), WAIT);
    expect(changes).toContainEqual([a.url, true]);
    const before = a.requests.length;
    for (let i = 0; i < 10; i++) await quotes.request({ path: '/back' });
    expect(a.requests.length).toBeGreaterThan(before);
  });

  it('takes a dead instance out by health checks alone, with no traffic', async () => {
    const a = await startInstance();
    const b = await startInstance();
    const quotes = client({ urls: [a.url, b.url] });
    await a.stop();
    await vi.waitFor(() => expect(inRotation(quotes, a.url)).toBe(false), WAIT);
    expect(inRotation(quotes, b.url)).toBe(true);
    expect(quotes.state().find((s) => s.url === a.url)?.breaker).toMatch(/^(open|half-open)$/);
  });

  it('fails with the dependency error when every instance is down, and at once when none is in rotation', async () => {
    const a = await startInstance();
    const b = await startInstance();
    const quotes = client({ urls: [a.url, b.url], halfOpenAfterMs: 60_000 });
    await a.stop();
    await b.stop();
    const error = await rejection(withDeadline(Date.now() + 20_000, () => quotes.request({ path: '/quote' })));
    expect(isDependencyUnavailable(error)).toBe(true);
    if (!isDependencyUnavailable(error)) return;
    expect(error.details.dependency).toBe('quotes');
    // Every attempt refused, or the breakers already open: it did not wait for the deadline.
    expect(['failed', 'no-instance']).toContain(error.details.reason);

    await vi.waitFor(() => expect(quotes.state().every((s) => !s.inRotation)).toBe(true), WAIT);
    const none = await rejection(withDeadline(Date.now() + 20_000, () => quotes.request({ path: '/quote' })));
    expect(isDependencyUnavailable(none)).toBe(true);
    if (!isDependencyUnavailable(none)) return;
    expect(none.details).toEqual({ dependency: 'quotes', reason: 'no-instance', attempts: 0 });
  });
});

describe('service client: retries', () => {
  /** Answers 503 on `/busy`, else the default. */
  const busy: Handler = (req, res) => {
    if (!req.url?.startsWith('/busy')) return false;
    res.statusCode = 503;
    res.end('busy');
  };

  it('retries a GET that got 503 on the other instance', async () => {
    const a = await startInstance(busy);
    const b = await startInstance();
    const quotes = client({ urls: [a.url, b.url], healthIntervalMs: 60_000, breakerThreshold: 100 });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await quotes.request({ path: '/busy' }));
    expect(answers.every((answer) => answer.status === 200 && answer.instance === b.url)).toBe(true);
    expect(answers.some((answer) => answer.attempts === 2)).toBe(true);
  });

  it('does not retry a POST that got 503, nor a GET past its attempts', async () => {
    const a = await startInstance(busy);
    const b = await startInstance(busy);
    const quotes = client({ urls: [a.url, b.url], healthIntervalMs: 60_000, breakerThreshold: 100 });
    const error = await rejection(quotes.request({ method: 'POST', path: '/busy', body: { n: 1 } }));
    expect(isDependencyUnavailable(error) && error.details).toEqual({
      dependency: 'quotes',
      reason: 'failed',
      attempts: 1,
    });
    expect(a.requests.length + b.requests.length).toBe(1);

    const get = await rejection(quotes.request({ path: '/busy' }));
    expect(isDependencyUnavailable(get) && get.details).toEqual({
      dependency: 'quotes',
      reason: 'failed',
      attempts: 3,
    });
    expect(a.requests.length + b.requests.length).toBe(4);
    // A retry goes to an instance not tried yet in this call: both saw the GET.
    expect(a.requests.filter((r) => r.startsWith('GET'))).not.toHaveLength(0);
    expect(b.requests.filter((r) => r.startsWith('GET'))).not.toHaveLength(0);
  });

  it('retries a POST whose connection was refused, on another instance, sending it once', async () => {
    const refused = await refusedUrl();
    const b = await startInstance();
    const quotes = client({ urls: [refused, b.url], healthIntervalMs: 60_000, breakerThreshold: 100 });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await quotes.request({ method: 'POST', path: '/order', body: { i } }));
    expect(answers.every((answer) => answer.status === 200 && answer.instance === b.url)).toBe(true);
    expect(answers.some((answer) => answer.attempts === 2)).toBe(true);
    expect(b.requests).toEqual(['POST /order', 'POST /order', 'POST /order', 'POST /order']);
  });

  it('returns a 404 without retrying it or charging the breaker', async () => {
    const missing: Handler = (_req, res) => {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ code: 'QUOTE.NOT_FOUND' }));
    };
    const a = await startInstance(missing);
    const b = await startInstance(missing);
    const quotes = client({ urls: [a.url, b.url], breakerThreshold: 2 });
    for (let i = 0; i < 6; i++) {
      const answer = await quotes.request<{ code: string }>({ path: '/quotes/42' });
      expect(answer.status).toBe(404);
      expect(answer.body).toEqual({ code: 'QUOTE.NOT_FOUND' });
      expect(answer.attempts).toBe(1);
    }
    expect(a.requests.length + b.requests.length).toBe(6);
    expect(quotes.state().map((s) => [s.inRotation, s.breaker, s.lastError])).toEqual([
      [true, 'closed', undefined],
      [true, 'closed', undefined],
    ]);
  });
});

describe('service client: deadlines', () => {
  it('tells the callee its budget in x-stratum-deadline-ms', async () => {
    const a = await startInstance();
    const quotes = client({ urls: [a.url] });
    const scoped = await withDeadline(Date.now() + 800, () => quotes.request<{ deadline: string }>({ path: '/quote' }));
    const own = await quotes.request<{ deadline: string }>({ path: '/quote', deadlineMs: 300 });
    const unbounded = await quotes.request<{ deadline: string }>({ path: '/quote' });
    for (const [answer, budget] of [
      [scoped, 800],
      [own, 300],
      [unbounded, 5000],
    ] as const) {
      expect(answer.body.deadline).toMatch(/^\d+$/);
      expect(Number(answer.body.deadline)).toBeGreaterThanOrEqual(1);
      expect(Number(answer.body.deadline)).toBeLessThanOrEqual(budget);
    }
    // The earlier of the scope's deadline and the call's own.
    const both = await withDeadline(Date.now() + 5000, () =>
      quotes.request<{ deadline: string }>({ path: '/quote', deadlineMs: 200 }),
    );
    expect(Number(both.body.deadline)).toBeLessThanOrEqual(200);
  });

  it("gives up at the caller's deadline and aborts the request on the server", async () => {
    let closedOnServer = 0;
    const silent = await startInstance((req) => {
      req.socket.once('close', () => closedOnServer++);
    });
    const quotes = client({ urls: [silent.url], healthIntervalMs: 60_000, breakerThreshold: 2 });
    for (let i = 0; i < 2; i++) {
      const error = await rejection(withDeadline(Date.now() + 150, () => quotes.request({ path: '/never' })));
      expect(isDependencyUnavailable(error) && error.details).toEqual({
        dependency: 'quotes',
        reason: 'deadline',
        attempts: 1,
      });
    }
    await vi.waitFor(() => expect(closedOnServer).toBe(2), WAIT);
    // Cut at the caller's deadline is not the instance's failure: two of them leave its breaker closed.
    expect(quotes.state()[0]).toMatchObject({ inRotation: true, breaker: 'closed', outstanding: 0 });
    // A deadline already past: nothing is sent.
    const past = await rejection(withDeadline(Date.now() - 1, () => quotes.request({ path: '/never' })));
    expect(isDependencyUnavailable(past) && past.details).toEqual({
      dependency: 'quotes',
      reason: 'deadline',
      attempts: 0,
    });
    expect(silent.requests).toHaveLength(2);
  });

  it('tries again within the deadline when an attempt times out', async () => {
    let closedOnServer = 0;
    const once = await startInstance((req, _res, instance) => {
      if (instance.requests.length === 1) {
        req.socket.once('close', () => closedOnServer++);
        return;
      }
      return false;
    });
    const quotes = client({ urls: [once.url], attemptTimeoutMs: 300, healthIntervalMs: 60_000 });
    const answer = await withDeadline(Date.now() + 20_000, () => quotes.request({ path: '/slow-once' }));
    expect(answer.status).toBe(200);
    // 2, unless a loaded machine also let a later attempt run past 300 ms.
    expect(answer.attempts).toBeGreaterThanOrEqual(2);
    expect(once.requests).toHaveLength(answer.attempts);
    await vi.waitFor(() => expect(closedOnServer).toBe(1), WAIT);
  });

  it('rejects with REQUEST.ABORTED when the caller aborts', async () => {
    const silent = await startInstance(() => undefined);
    const quotes = client({ urls: [silent.url], healthIntervalMs: 60_000 });
    const controller = new AbortController();
    const pending = rejection(quotes.request({ path: '/never', signal: controller.signal }));
    await vi.waitFor(() => expect(silent.requests).toHaveLength(1), WAIT);
    controller.abort();
    const error = await pending;
    expect(isAppError(error, 'REQUEST.ABORTED')).toBe(true);
    expect(quotes.state()[0]).toMatchObject({ inRotation: true, outstanding: 0 });
  });
});

describe('service client: lifecycle and options', () => {
  it('close() stops the health checks and closes every connection', async () => {
    const a = await startInstance();
    const b = await startInstance();
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const clearIntervalSpy = vi.spyOn(globalThis, 'clearInterval');
    const quotes = client({ urls: [a.url, b.url] });
    const timers = setIntervalSpy.mock.results.map((r) => r.value as unknown);
    setIntervalSpy.mockRestore();
    expect(timers).toHaveLength(1);
    for (let i = 0; i < 6; i++) await quotes.request({ path: '/quote' });
    await vi.waitFor(() => expect(a.healthChecks).toBeGreaterThan(0), WAIT);
    expect(a.sockets.size + b.sockets.size).toBeGreaterThan(0);
    await quotes.close();
    expect(clearIntervalSpy).toHaveBeenCalledWith(timers[0]);
    clearIntervalSpy.mockRestore();
    await vi.waitFor(() => expect(a.sockets.size + b.sockets.size).toBe(0), WAIT);
    const checks = a.healthChecks + b.healthChecks;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(a.healthChecks + b.healthChecks).toBe(checks);
    expect(a.sockets.size + b.sockets.size).toBe(0);
    const error = await rejection(quotes.request({ path: '/quote' }));
    expect(isDependencyUnavailable(error) && error.details.reason).toBe('no-instance');
  });

  it('parses JSON answers and passes text through', async () => {
    const a = await startInstance((req, res) => {
      if (req.url === '/text') {
        res.setHeader('content-type', 'text/plain');
        res.end('plain words');
        return;
      }
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.end(
          JSON.stringify({ got: JSON.parse(body), type: req.headers['content-type'], trace: req.headers['x-trace'] }),
        );
      });
    });
    const quotes = client({ urls: [a.url] });
    const text = await quotes.request<string>({ path: '/text' });
    expect(text.body).toBe('plain words');
    const echo = await quotes.request({ method: 'PUT', path: '/echo', body: { n: 1 }, headers: { 'x-trace': 't1' } });
    expect(echo.body).toEqual({ got: { n: 1 }, type: 'application/json', trace: 't1' });
  });

  it('refuses bad options with a TypeError', () => {
    expect(() => createServiceClient({ name: 'quotes', urls: [] })).toThrow(TypeError);
    expect(() => createServiceClient({ name: 'quotes', urls: ['http://127.0.0.1:1', 'not a url'] })).toThrow(
      /"not a url" is not a URL/,
    );
    expect(() => createServiceClient({ name: 'quotes', urls: ['ftp://127.0.0.1:21'] })).toThrow(TypeError);
    expect(() => createServiceClient({ name: 'quotes', urls: ['http://127.0.0.1:1/api'] })).toThrow(TypeError);
    expect(() => createServiceClient({ name: 'quotes', urls: ['http://127.0.0.1:1', 'http://127.0.0.1:1/'] })).toThrow(
      /listed twice/,
    );
    expect(() => createServiceClient({ name: 'quotes', urls: ['http://127.0.0.1:1'], attempts: 0 })).toThrow(TypeError);
  });
});
