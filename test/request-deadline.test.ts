import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { buildApp, type App } from '../src/http/app.ts';
import { LAST_RESORT_MARGIN_MS } from '../src/http/request-deadline.ts';
import { createMetrics } from '../src/platform/observability/metrics.ts';
import { currentDeadline } from '../src/platform/db/deadline-scope.ts';
import { poolGateOf } from '../src/platform/db/pool-gate.ts';
import type { Sql } from '../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// The last-resort request timeout: a handler that never answers is answered 503 shortly after the request's
// deadline, and what it reserved goes back to its pool.
const DEADLINE_MS = 300;
let db: TestDatabase;
let sql: Sql;
let app: App;
let reservedNow: () => void = () => {};

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 2 });
  sql = db.sql;
  app = await buildApp({
    bodyLimitBytes: 1024,
    requestDeadlineMs: DEADLINE_MS,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics({ sql, applicationName: db.applicationName, poolMax: 2 }),
    readiness: async () => {},
    routes: [
      (a) => {
        a.get('/stuck', () => new Promise(() => {}));
        a.get('/stuck-holding', async () => {
          const connection = await sql.reserve();
          await connection`select 1`;
          reservedNow();
          return new Promise(() => {});
        });
        a.get('/deadline', async () => ({ left: (currentDeadline() ?? 0) - Date.now() }));
        a.get('/slow-route', { config: { deadlineMs: 1000 } }, async () => {
          await new Promise((r) => setTimeout(r, 600));
          return { done: true };
        });
        a.get('/after-cutoff', async () => {
          await new Promise((r) => setTimeout(r, DEADLINE_MS + LAST_RESORT_MARGIN_MS + 100));
          return { late: true };
        });
      },
    ],
  });
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('the last-resort request timeout', () => {
  it('answers 503 REQUEST.DEADLINE_EXCEEDED with Retry-After for a handler stuck on a promise that never resolves', async () => {
    const started = Date.now();
    const res = await app.inject({ method: 'GET', url: '/stuck' });
    const took = Date.now() - started;
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json().code).toBe('REQUEST.DEADLINE_EXCEEDED');
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS);
    expect(took).toBeLessThan(DEADLINE_MS + LAST_RESORT_MARGIN_MS + 250);
  });

  it('gives back the connection a stuck handler reserved, so the pool serves the next callers', async () => {
    const gate = poolGateOf(sql)!;
    let heldWhileStuck = -1;
    reservedNow = () => {
      heldWhileStuck = gate.state().inUse;
    };
    const answers = await Promise.all([
      app.inject({ method: 'GET', url: '/stuck-holding' }),
      app.inject({ method: 'GET', url: '/stuck-holding' }),
    ]);
    expect(heldWhileStuck).toBeGreaterThanOrEqual(1);
    expect(answers.map((a) => a.statusCode)).toEqual([503, 503]);
    // Both reserved connections are back: the gate counts none in use and two fresh callers get one each.
    await expect.poll(() => gate.state().inUse, { timeout: 2000 }).toBe(0);
    const [a, b] = await Promise.all([sql.reserve(), sql.reserve()]);
    expect((await a`select 1 as one`)[0]!.one).toBe(1);
    expect((await b`select 2 as two`)[0]!.two).toBe(2);
    a.release();
    b.release();
    expect(gate.state().inUse).toBe(0);
  });

  it('runs the handler under the request deadline, so every wait inside it is bounded by it', async () => {
    const res = await app.inject({ method: 'GET', url: '/deadline' });
    expect(res.statusCode).toBe(200);
    const left = res.json().left as number;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(DEADLINE_MS);
  });

  it('lets a route with a longer deadline of its own finish', async () => {
    const res = await app.inject({ method: 'GET', url: '/slow-route' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ done: true });
  });

  it('answers once: a handler that finishes after the cut-off does not answer again', async () => {
    const res = await app.inject({ method: 'GET', url: '/after-cutoff' });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('REQUEST.DEADLINE_EXCEEDED');
    // The late handler's own answer is dropped; the app keeps serving.
    await new Promise((r) => setTimeout(r, 200));
    expect((await app.inject({ method: 'GET', url: '/deadline' })).statusCode).toBe(200);
  });
});
