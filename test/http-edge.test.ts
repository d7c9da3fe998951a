import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.ts';
import { AppError } from '../src/platform/errors/app-error.ts';
import { createMetrics } from '../src/platform/observability/metrics.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { serveStratum } from './support/child.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// The HTTP edge: the operations routes in the OpenAPI document, one info line per request, one output format.

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}
const INFO = 30;
const DEBUG = 20;

let db: TestDatabase;
let testApp: TestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  testApp = await startTestApp(db);
});

afterAll(async () => {
  await testApp?.close();
  await db?.drop();
});

/** An app whose pino logger writes its JSON lines to an array. */
async function appLoggingTo(
  level: string,
  readiness: () => Promise<Record<string, unknown> | void> = async () => undefined,
) {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const app = await buildApp({
    bodyLimitBytes: 65536,
    requestDeadlineMs: 2000,
    logger: pino({ level }, stream),
    metrics: createMetrics({ sql: db.sql, applicationName: db.applicationName, poolMax: 5 }),
    readiness,
    routes: [],
  });
  return { app, lines };
}

/** A JSON line of a process's output, or what the line was when it is not JSON. */
function parseLines(output: string): Array<LogLine | string> {
  return output
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        return line;
      }
    });
}

describe('the OpenAPI document', () => {
  it('lists /healthz, /readyz and /metrics with their response schemas', async () => {
    // OpenAPI 3.0 has no `const`: the document spells a literal as a one-value enum.
    const response = await testApp.app.inject({ method: 'GET', url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json();
    const healthz = doc.paths['/healthz']?.get;
    const readyz = doc.paths['/readyz']?.get;
    const metrics = doc.paths['/metrics']?.get;
    for (const operation of [healthz, readyz, metrics]) {
      expect(operation).toBeDefined();
      expect(operation.tags).toEqual(['operations']);
      expect(operation.summary).toEqual(expect.any(String));
    }

    const health = healthz.responses['200'].content['application/json'].schema;
    expect(health).toMatchObject({
      type: 'object',
      required: ['status'],
      properties: { status: { type: 'string', enum: ['ok'] } },
    });

    const ready = readyz.responses['200'].content['application/json'].schema;
    expect(ready).toMatchObject({
      type: 'object',
      additionalProperties: true,
      required: ['status', 'database'],
      properties: { status: { type: 'string', enum: ['ready'] }, database: { type: 'string', enum: ['ok'] } },
    });
    const notReady = readyz.responses['503'];
    expect(notReady.headers['retry-after']).toBeDefined();
    expect(Object.keys(notReady.content)).toEqual(['application/problem+json']);
    expect(notReady.content['application/problem+json'].schema).toMatchObject({
      type: 'object',
      additionalProperties: true,
      required: ['type', 'title', 'status', 'code', 'detail'],
    });

    expect(metrics.responses['200'].content).toEqual({ 'text/plain': { schema: { type: 'string' } } });
  });

  it('the routes still answer as the document says', async () => {
    const { app } = testApp;
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ status: 'ready', database: 'ok' });
  });
});

describe('/readyz bodies pass their schemas whole', () => {
  it('keeps the entries a readiness check adds', async () => {
    const { app } = await appLoggingTo('silent', async () => ({
      cluster: { primary: 'a', replicas: [{ lagMs: 3 }] },
      orders: { shards: 4 },
    }));
    try {
      const response = await app.inject({ method: 'GET', url: '/readyz' });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        status: 'ready',
        database: 'ok',
        cluster: { primary: 'a', replicas: [{ lagMs: 3 }] },
        orders: { shards: 4 },
      });
    } finally {
      await app.close();
    }
  });

  it("answers 503 problem+json with the failing check's code and details", async () => {
    const details = { pools: [{ name: 'users', max: 5, inUse: 5, waiting: 2 }] };
    const { app } = await appLoggingTo('silent', async () => {
      throw new AppError('DB.POOL_EXHAUSTED', 'pool users refused callers', { details });
    });
    try {
      const response = await app.inject({ method: 'GET', url: '/readyz' });
      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['retry-after']).toBe('2');
      expect(response.json()).toEqual({
        type: 'urn:stratum:error:DB.POOL_EXHAUSTED',
        title: 'Service Unavailable',
        status: 503,
        code: 'DB.POOL_EXHAUSTED',
        detail: 'pool users refused callers',
        details,
      });
    } finally {
      await app.close();
    }
  });
});

describe('/metrics', () => {
  it('still answers the Prometheus text exposition, not JSON', async () => {
    await testApp.app.inject({ method: 'GET', url: '/healthz' });
    const response = await testApp.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body.startsWith('"')).toBe(false);
    expect(response.body).toMatch(/^# HELP stratum_http_request_duration_seconds /m);
    expect(response.body).toMatch(/^# TYPE stratum_http_request_duration_seconds histogram$/m);
    expect(response.body).toMatch(
      /^stratum_http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} \d+$/m,
    );
  });
});

describe('request logging', () => {
  it('writes one info line per request: request completed, with its status and response time', async () => {
    const { app, lines } = await appLoggingTo('info');
    try {
      for (const url of ['/healthz', '/no-such-route']) {
        lines.length = 0;
        const response = await app.inject({ method: 'GET', url });
        const info = lines.filter((l) => l.level === INFO);
        expect(info, JSON.stringify(lines)).toHaveLength(1);
        expect(info[0]).toMatchObject({
          msg: 'request completed',
          res: { statusCode: response.statusCode },
          responseTime: expect.any(Number),
        });
        expect(lines.filter((l) => l.level < INFO)).toEqual([]);
      }
    } finally {
      await app.close();
    }
  });

  it('keeps the incoming request line at debug', async () => {
    const { app, lines } = await appLoggingTo('debug');
    try {
      await app.inject({ method: 'GET', url: '/healthz' });
      expect(lines.filter((l) => l.level === INFO).map((l) => l.msg)).toEqual(['request completed']);
      const incoming = lines.filter((l) => l.msg === 'incoming request');
      expect(incoming).toHaveLength(1);
      expect(incoming[0]).toMatchObject({ level: DEBUG, req: { method: 'GET', url: '/healthz' } });
    } finally {
      await app.close();
    }
  });
});

describe('stratum serve output', () => {
  it('is pino JSON only: its own lines on stderr, one info line per request on stdout', async () => {
    const served = await serveStratum({ DATABASE_URL: db.url, LOG_LEVEL: 'info' });
    let exited = false;
    try {
      expect((await fetch(`${served.url}/healthz`)).status).toBe(200);
      served.child.kill('SIGTERM');
      const done = await served.exited;
      exited = true;
      expect(done.code).toBe(0);

      const stderr = parseLines(done.stderr);
      const stdout = parseLines(done.stdout);
      expect([...stderr, ...stdout].filter((l) => typeof l === 'string')).toEqual([]);
      const own = stderr as LogLine[];
      const listening = own.find((l) => l.msg.startsWith('listening on '));
      expect(listening).toMatchObject({
        level: INFO,
        url: served.url,
        database: 'DATABASE_URL',
        msg: `listening on ${served.url} (database: DATABASE_URL)`,
      });
      expect(own.map((l) => l.msg)).toEqual(
        expect.arrayContaining(['SIGTERM received, finishing requests in flight', 'stopped']),
      );

      const requests = (stdout as LogLine[]).filter(
        (l) => l.level === INFO && (l.req !== undefined || l.res !== undefined),
      );
      expect(requests).toHaveLength(1);
      expect(requests[0]).toMatchObject({ msg: 'request completed', res: { statusCode: 200 } });
    } finally {
      if (!exited) {
        served.child.kill('SIGKILL');
        await served.exited;
      }
    }
  });
});
