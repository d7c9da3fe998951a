import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp } from './support/app.ts';
import { checkReachable, createPool, describeTarget } from '../src/platform/db/connect.ts';
import { loadConfig } from '../src/config/config.ts';
import { assembleServices } from '../src/app/services.ts';
import { startFaultProxy } from './support/cache-fault-proxy.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** The test database's URL with a dead host listed first. */
function multiHostUrl(): string {
  const u = new URL(db.url);
  return `postgres://${u.username}${u.password ? `:${u.password}` : ''}@127.0.0.1:1,${u.host}${u.pathname}`;
}

describe('connections', () => {
  it('reaches the database through a multi-host URL whose first host is down', async () => {
    const sql = createPool(
      { url: multiHostUrl() },
      { max: 2, applicationName: 'multi-host-test', connectTimeoutSeconds: 2 },
    );
    try {
      const [row] = await sql`select current_database() as name`;
      expect(row!.name).toBe(db.name);
    } finally {
      await sql.end();
    }
  });

  it('names every host of a URL, and the cause, when none answers', async () => {
    const target = { url: 'postgres://nobody@127.0.0.1:1,127.0.0.1:2/x' };
    expect(describeTarget(target)).toBe('127.0.0.1:1, 127.0.0.1:2');
    const sql = createPool(target, { max: 1, applicationName: 'unreachable-test', connectTimeoutSeconds: 1 });
    const error = await checkReachable(sql, target, 3000).then(
      () => undefined,
      (e) => e,
    );
    await sql.end({ timeout: 0 });
    expect(isAppError(error, 'DB.UNAVAILABLE')).toBe(true);
    expect(error.message).toMatch(/^cannot reach PostgreSQL at 127\.0\.0\.1:1, 127\.0\.0\.1:2: \S/);
  });
});

describe('health, metrics and docs', () => {
  it('reports ready while the database answers, and 503 when it does not', async () => {
    const live = await startTestApp(db);
    const ready = await live.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect((await live.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    await live.close();

    // The same app through a proxy that then drops every connection: the database looks down.
    const proxy = await startFaultProxy(db.url);
    const viaProxy = createPool(
      { url: proxy.url },
      { max: 1, applicationName: db.applicationName, connectTimeoutSeconds: 1 },
    );
    const config = loadConfig({ DATABASE_URL: proxy.url, LOG_LEVEL: 'silent', ROLE: 'api' }, process.cwd());
    const down = await assembleServices(config, {
      admin: viaProxy,
      target: { url: proxy.url },
      pools: { own: { accounts: viaProxy, images: viaProxy }, all: () => [], end: async () => {} },
      applicationName: db.applicationName,
    });
    proxy.cut();
    const res = await down.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('DB.UNAVAILABLE');
    await down.close();
    await viaProxy.end({ timeout: 0 });
    await proxy.close();
  });

  it('exports HTTP latency, pool and transaction metrics in Prometheus format', async () => {
    const testApp = await startTestApp(db);
    const app = testApp.app;
    await app.inject({
      method: 'POST',
      url: '/users',
      payload: { username: 'metered', profile: { firstname: 'a', lastname: 'b' } },
    });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(
      /stratum_http_request_duration_seconds_bucket\{[^}]*method="POST",route="\/users",status="201"/,
    );
    expect(res.body).toMatch(/stratum_db_pool_connections\{state="in_use"\} \d+/);
    expect(res.body).toMatch(/stratum_db_pool_connections\{state="idle"\} \d+/);
    expect(res.body).toMatch(/stratum_db_pool_max 10/);
    expect(res.body).toContain('stratum_tx_retries_total');
    expect(res.body).toContain('stratum_tx_deadline_exceeded_total');
    await testApp.close();
  });

  it('serves the OpenAPI document with the users routes, and rejects oversized bodies with 413', async () => {
    const testApp = await startTestApp(db, { bodyLimitBytes: 1024 });
    const app = testApp.app;
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/users', '/users/{id}', '/actions']));
    const big = await app.inject({
      method: 'POST',
      url: '/users',
      payload: { username: 'x'.repeat(2000), profile: { firstname: 'a', lastname: 'b' } },
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().code).toBe('REQUEST.TOO_LARGE');
    const unknown = await app.inject({ method: 'GET', url: '/nothing-here' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('RESOURCE.NOT_FOUND');
    await testApp.close();
  });
});
