import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { launchChromiumOrSkip, watchPage } from './support/browser.ts';

const TOKEN = 'a-long-dashboard-token-for-tests';
const OUTPUT = 'test-output';
const PANELS = [
  'requests',
  'latency',
  'routes',
  'errors',
  'pools',
  'transactions',
  'messaging',
  'cache',
  'cluster',
  'contexts',
];

let db: TestDatabase;
let local: TestApp;
let exposed: TestApp;
let unguarded: TestApp;
let browser: Browser | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  local = await startTestApp(db, { host: '127.0.0.1' });
  exposed = await startTestApp(db, { role: 'api', host: '0.0.0.0', adminToken: TOKEN });
  unguarded = await startTestApp(db, { role: 'api', host: '0.0.0.0', adminToken: undefined });
  fs.mkdirSync(OUTPUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await local?.close();
  await exposed?.close();
  await unguarded?.close();
  await db?.drop();
});

const PATHS = [
  '/dashboard',
  '/dashboard/assets/dashboard.js',
  '/dashboard/assets/uplot.js',
  '/dashboard/api/samples?after=0',
  '/dashboard/data-browser',
];

describe('access off loopback', () => {
  it('answers 401 problem+json to every path without the right token, and nothing of the page or its data', async () => {
    for (const app of [exposed, unguarded])
      for (const url of PATHS)
        for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
          const res = await app.app.inject({ method: 'GET', url, headers });
          expect(res.statusCode, `${url} ${JSON.stringify(headers)}`).toBe(401);
          expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
          expect(res.json().code).toBe('AUTH.UNAUTHORIZED');
          expect(res.body).not.toMatch(/uPlot|<html|"samples"/);
        }
    // Without ADMIN_TOKEN configured, even the right-looking token opens nothing.
    const res = await unguarded.app.inject({
      method: 'GET',
      url: '/dashboard',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(401);
  });

  it('serves the page, its assets and its data with the token, as a header or ?token=', async () => {
    for (const url of PATHS) {
      const res = await exposed.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.statusCode, url).toBe(200);
    }
    const page = await exposed.app.inject({ method: 'GET', url: `/dashboard?token=${TOKEN}` });
    expect(page.statusCode).toBe(200);
    // Links and assets carry the token on.
    expect(page.body).toContain(`/dashboard/assets/dashboard.js?token=${TOKEN}`);
    expect(page.body).toContain(`/dashboard/data-browser?token=${TOKEN}`);
    const samples = await exposed.app.inject({ method: 'GET', url: `/dashboard/api/samples?after=0&token=${TOKEN}` });
    expect(samples.statusCode).toBe(200);
  });

  it('answers a bad query with 400 and an unknown asset with 404', async () => {
    const bad = await local.app.inject({ method: 'GET', url: '/dashboard/api/samples?after=soon' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('REQUEST.INVALID');
    const missing = await local.app.inject({ method: 'GET', url: '/dashboard/assets/secrets.js' });
    expect(missing.statusCode).toBe(404);
    const proto = await local.app.inject({ method: 'GET', url: '/dashboard/assets/constructor' });
    expect(proto.statusCode).toBe(404);
  });
});

describe('in a browser', () => {
  it('loads with no console errors, shows every panel, and its request rate and latency change under load', async (ctx) => {
    browser = await launchChromiumOrSkip(ctx);
    const base = await local.app.listen({ host: '127.0.0.1', port: 0 });
    const { page, errors, requests } = watchPage(await browser.newPage({ viewport: { width: 1500, height: 2200 } }));
    const methods: string[] = [];
    page.on('request', (r) => methods.push(r.method()));
    // A wait that fails says what went wrong on the page.
    const until = async (
      fn: (arg: string | null | undefined) => unknown,
      arg: string | null | undefined,
      what: string,
    ) => {
      try {
        await page.waitForFunction(fn, arg, { timeout: 15_000 });
      } catch (error) {
        throw new Error(`${what}; page errors: ${JSON.stringify(errors)}`, { cause: error });
      }
    };
    await page.goto(`${base}/dashboard`, { waitUntil: 'load' });
    await until(
      () => document.getElementById('state')?.textContent?.startsWith('live'),
      undefined,
      'the page went live',
    );
    // The status part (databases, broker) comes with the first answers.
    await until(
      () => !document.querySelector('[data-value="messaging"]')?.textContent?.includes('reading'),
      undefined,
      'the status arrived',
    );
    const rpsBefore = await page.textContent('[data-metric="rps"]');
    const latencyBefore = await page.textContent('[data-metric="latency"]');

    // A short load: creations, reads, and reads of accounts that do not exist (errors by code).
    const created: Array<string | number> = [];
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          fetch(`${base}/accounts`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: `dash-${round}-${i}` }),
          }).then((r) => r.json() as Promise<{ id: string | number }>),
        ),
      );
      created.push(...answers.map((a) => a.id));
      await Promise.all([
        ...created.slice(-15).map((id) => fetch(`${base}/accounts/${id}`).then((r) => r.arrayBuffer())),
        ...Array.from({ length: 5 }, (_, i) =>
          fetch(`${base}/accounts/00000000-0000-4000-8000-00000000000${i}`).then((r) => r.arrayBuffer()),
        ),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(created.every((id) => /^[\w-]+$/.test(String(id)))).toBe(true);

    await until(
      (before) => document.querySelector('[data-metric="rps"]')?.textContent !== before,
      rpsBefore,
      'the request rate changed',
    );
    await until(
      () => document.querySelector('[data-value="routes"]')?.textContent?.includes('POST /accounts'),
      undefined,
      'the routes table shows POST /accounts',
    );
    await until(
      () => document.querySelector('[data-value="errors"]')?.textContent?.includes('ACCOUNT.NOT_FOUND'),
      undefined,
      'the errors table shows ACCOUNT.NOT_FOUND',
    );
    const latencyAfter = await page.textContent('[data-metric="latency"]');
    expect(latencyAfter).not.toBe(latencyBefore);
    expect(latencyAfter).toMatch(/p50 [\d.]+ ms · p99 [\d.]+ ms/);
    expect(await page.textContent('[data-metric="rps"]')).toMatch(/[1-9][\d.]* req\/s|0\.[1-9]\d* req\/s/);

    // Every panel shows a value, or says its subsystem is not configured.
    for (const id of PANELS) {
      const text = (await page.textContent(`[data-value="${id}"]`))?.trim() ?? '';
      expect(text, id).not.toBe('');
      expect(text, id).not.toMatch(/^…$|^reading…$/);
    }
    expect(await page.textContent('[data-value="pools"]')).toMatch(/accounts/);
    expect(await page.textContent('[data-value="transactions"]')).toMatch(/commits/);
    expect(await page.textContent('[data-value="messaging"]')).toMatch(/broker: postgres/);
    expect(await page.textContent('[data-value="messaging"]')).toMatch(/main/);
    expect(await page.textContent('[data-value="cluster"]')).toMatch(/not configured/);
    expect(await page.textContent('[data-value="cache"]')).toMatch(/Redis tier not configured|accounts/);
    // The orders context's shards, with their buckets.
    expect(await page.textContent('[data-value="contexts"]')).toMatch(/orders[\s\S]*buckets/);
    // The users context's score log (SCORE_MODE=deferred), plain values.
    expect(await page.textContent('[data-context="users"]')).toMatch(/scoreMode\s*sync[\s\S]*scoreLogLength\s*0/);
    expect(await page.textContent('[data-context="users"]')).not.toMatch(/object Object/);
    // Charts are drawn (uPlot canvases of a real size).
    const canvases = await page.$$eval('[data-chart] canvas', (list) =>
      list.map((c) => (c as HTMLCanvasElement).width * (c as HTMLCanvasElement).height),
    );
    expect(canvases.length).toBe(await page.locator('[data-chart]').count());
    expect(canvases.length).toBeGreaterThanOrEqual(7);
    expect(canvases.every((area) => area > 0)).toBe(true);

    // Read-only and self-contained: GET only, nothing from anywhere but the service.
    expect(new Set(methods)).toEqual(new Set(['GET']));
    expect(requests.every((url) => url.startsWith(base))).toBe(true);
    // The data browser is one click away.
    await page.screenshot({ path: `${OUTPUT}/dashboard.png`, fullPage: true });
    expect(errors).toEqual([]);
    await page.click('text=Data browser');
    await page.waitForLoadState('load');
    expect(page.url()).toBe(`${base}/dashboard/data-browser`);
    expect(await page.textContent('body')).toMatch(/accounts/);
    expect(errors).toEqual([]);
  });
});
