import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { brokerPage } from '../tools/chaos/chaos-pages.ts';
import { APPLIED, type BrokerChaosRun } from '../tools/chaos/broker-chaos.ts';
import { runLoadtestCommand } from '../tools/loadtest/command.ts';
import { writeHtmlReport } from '../tools/loadtest/html-report.ts';
import { formatProgress, startProgress } from '../tools/loadtest/progress.ts';
import type { LoadtestReport } from '../tools/loadtest/report.ts';
import { createTimeline } from '../tools/loadtest/timeline.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { launchChromiumOrSkip, openFile } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const OUTPUT = 'test-output';
let db: TestDatabase;
let stratum: TestApp;
let url: string;
let dir: string;
let browser: Browser | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  stratum = await startTestApp(db, { ordersShardCount: 2 });
  url = await stratum.app.listen({ host: '127.0.0.1', port: 0 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-report-'));
  fs.mkdirSync(OUTPUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await stratum?.close();
  await db?.drop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The number a report card shows under `label`. */
const card = async (page: Page, label: string) =>
  page
    .locator('.card')
    .filter({ has: page.locator('.label', { hasText: new RegExp(`^${label}$`) }) })
    .locator('.value')
    .textContent();

describe('the progress line', () => {
  it('says elapsed, sent, answered, errors and the current p99, every tick, and once more at the end on a terminal', async () => {
    const lines: string[] = [];
    let n = 0;
    const progress = startProgress(
      'loadtest',
      () => ({ elapsedS: ++n, totalS: 10, sent: 40 * n, answered: 39 * n, errors: n - 1, p99Ms: 12.34, inFlight: 1 }),
      { tty: true, write: (text) => lines.push(text), columns: 200 },
      () => {},
      20,
    );
    await new Promise((resolve) => setTimeout(resolve, 120));
    progress.stop();
    const shown = lines.filter((l) => l.includes('loadtest:'));
    expect(shown.length).toBeGreaterThanOrEqual(2);
    expect(shown.at(-1)).toMatch(/loadtest: \d+\/10 s, sent \d+, answered \d+, errors \d+, p99 12\.3 ms \(last 5 s\)/);
    expect(lines.at(-1)).toBe('\n');
    expect(formatProgress('chaos', { elapsedS: 3, sent: 1, answered: 0, errors: 1, p99Ms: null, inFlight: 0 })).toBe(
      'chaos: 3 s, sent 1, answered 0, errors 1, p99 - (last 5 s), in flight 0',
    );
  });

  it('prints a plain line every 5 s, not a rewritten one, when stderr is not a terminal', async () => {
    const err: string[] = [];
    const code = await runLoadtestCommand(
      ['orders-mixed', '--url', url, '--rate', '20', '--duration', '6', '--customers', '5', '--no-html'],
      { out: () => {}, err: (l) => err.push(l), progress: { tty: false, write: (l) => err.push(l) } },
    );
    expect(code).toBe(0);
    const progress = err.filter((l) => l.startsWith('loadtest: ') && l.includes(', sent '));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[0]).toMatch(/^loadtest: 5\/6 s, sent \d+, answered \d+, errors 0, p99 [\d.]+ ms/);
    expect(progress.every((l) => !l.includes('\r'))).toBe(true);
  });
});

describe('the HTML report, opened from disk', () => {
  it('is written beside the JSON summary, draws its charts with no network, and its tables match the summary', async (ctx) => {
    const json = path.join(dir, 'orders.json');
    const out: string[] = [];
    const code = await runLoadtestCommand(
      ['orders-mixed', '--url', url, '--rate', '40', '--duration', '4', '--customers', '10', '--json', json],
      { out: (l) => out.push(l), err: () => {}, progress: { tty: false, write: () => {} } },
    );
    expect(code).toBe(0);
    const html = path.join(dir, 'orders.html');
    expect(out).toContain(`HTML report: ${html}`);
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as LoadtestReport;
    const text = fs.readFileSync(html, 'utf8');
    // One file: no script or style from anywhere else.
    expect(text).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);

    browser = await launchChromiumOrSkip(ctx);
    const { page, errors, requests } = await openFile(browser, html);
    await page.waitForSelector('[data-chart="throughput"] canvas');
    const charts = await page.$$eval('[data-chart]', (boxes) =>
      boxes.map((b) => {
        const canvas = b.querySelector('canvas');
        return { id: b.getAttribute('data-chart'), area: canvas ? canvas.width * canvas.height : 0 };
      }),
    );
    expect(charts.map((c) => c.id)).toEqual(expect.arrayContaining(['throughput', 'latency', 'statuses']));
    expect(charts.every((c) => c.area > 0)).toBe(true);
    // The per-kind table says what the summary says.
    const kindsTable = page.locator('section.table', { hasText: 'Requests by kind' });
    for (const [kind, row] of Object.entries(report.kinds)) {
      const cells = await kindsTable
        .locator('tr', { has: page.locator(`td:text-is("${kind}")`) })
        .locator('td')
        .allTextContents();
      expect(cells, kind).toContain(String(row.ok));
    }
    expect(await card(page, 'sent')).toBe(String(report.totals.sent));
    expect(await card(page, 'failed')).toBe(String(report.totals.failed));
    expect(requests.every((r) => r.startsWith('file://'))).toBe(true);
    expect(requests).toHaveLength(1);
    await page.screenshot({ path: `${OUTPUT}/loadtest-report.png`, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows a chaos run with its fault window shaded and the failed, retried and missing counts', async (ctx) => {
    // A synthetic broker run: 30 s at 10 events/s, the broker down from 10 s to 18 s.
    let now = 0;
    const timeline = createTimeline(['produce'], () => now);
    timeline.begin(0);
    for (let s = 0; s < 30; s++) {
      for (let i = 0; i < 10; i++) {
        now = s * 1000 + i * 100;
        timeline.started('produce');
        timeline.settled('produce', 'committed', true, 3 + (s >= 10 && s < 18 ? 40 : 0));
      }
      timeline.count(APPLIED, s >= 10 && s < 18 ? 0 : s === 18 ? 90 : 10);
    }
    now = 30_000;
    const run: BrokerChaosRun = {
      report: {
        broker: 'rabbitmq',
        eventsCommitted: 300,
        eventsPublished: 300,
        effectsApplied: 298,
        eventsLost: 2,
        duplicatedEffects: 0,
        brokerDownSeconds: 8,
        caughtUpSecondsAfterRestart: 1.5,
        producerFailures: 3,
        publishRetries: 7,
        handlerRetries: 4,
      },
      timeline,
      windows: [{ label: 'rabbitmq down', fromS: 10, toS: 18 }],
      startedAt: new Date('2026-12-06T12:00:00Z'),
    };
    const file = path.join(dir, 'chaos.html');
    await writeHtmlReport(file, brokerPage(run, { stopAt: 10, stopFor: 8, rate: 10, duration: 30 }));

    browser ??= await launchChromiumOrSkip(ctx);
    const { page, errors, requests } = await openFile(browser, file);
    await page.waitForSelector('[data-chart="throughput"] canvas');
    expect(await card(page, 'failed')).toBe('3');
    expect(await card(page, 'retried')).toBe('11');
    expect(await card(page, 'missing')).toBe('2');
    expect(await page.locator('.window').first().textContent()).toBe('rabbitmq down: 10.0 s to 18.0 s');
    // The shade is drawn on the chart: a pixel inside the window differs from one outside it, on an empty row.
    const shaded = await page.$eval('[data-chart="throughput"] canvas', (canvas) => {
      const c = canvas as HTMLCanvasElement;
      const ctx2d = c.getContext('2d')!;
      const row = Math.round(c.height * 0.1);
      const pixel = (fraction: number) =>
        Array.from(ctx2d.getImageData(Math.round(c.width * fraction), row, 1, 1).data);
      return { inside: pixel(0.47), outside: pixel(0.9) };
    });
    expect(shaded.inside).not.toEqual(shaded.outside);
    expect(requests).toHaveLength(1);
    await page.screenshot({ path: `${OUTPUT}/chaos-report.png`, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});
