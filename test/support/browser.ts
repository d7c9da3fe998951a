import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium: the browser tests drive it headless through playwright-core (no downloaded browser). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * No sandbox (tests run as root in containers), no GPU, and none of the browser's own traffic (updates, sync,
 * first-run pages): every request a page makes is one the page asked for.
 */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Launches headless Chromium, or skips the calling test with a message when it is not installed
 * (`apt-get install chromium`). In CI (`CI=true`, where .ci/run installs it) a missing browser fails the test.
 * @example const browser = await launchChromiumOrSkip(ctx);
 */
export async function launchChromiumOrSkip(ctx: { skip(note?: string): never }): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    const missing = `${CHROMIUM_PATH} is not installed (apt-get install chromium)`;
    if (process.env.CI) throw new Error(`${missing}: the browser tests must run in CI`);
    console.warn(`[stratum tests] skipped a browser test: ${missing}`);
    ctx.skip(missing);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/** A page, with what went wrong on it and every URL it asked for. */
export interface OpenedPage {
  page: Page;
  /** Console errors and uncaught exceptions, in order. */
  errors: string[];
  requests: string[];
}

/** Records on `page` its console errors, uncaught exceptions and every URL it asks for, from now on. */
export function watchPage(page: Page): OpenedPage {
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`page: ${error.message}`));
  page.on('request', (request) => requests.push(request.url()));
  return { page, errors, requests };
}

/** Opens `file` with file:// in a new page of `browser` and waits until it has loaded. */
export async function openFile(
  browser: Browser,
  file: string,
  viewport = { width: 1400, height: 900 },
): Promise<OpenedPage> {
  const opened = watchPage(await browser.newPage({ viewport }));
  await opened.page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  return opened;
}
