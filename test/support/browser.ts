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

/** True when the environment says it is CI (`CI=true`, as .ci/run and most CI services set it). */
function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.CI ?? '').trim().toLowerCase();
  return value !== '' && value !== 'false' && value !== '0';
}

/**
 * Launches headless Chromium, or skips the calling test with a message when it is not installed
 * (`apt-get install chromium`). In CI (`CI=true`, where .ci/run installs it) a missing browser fails the test.
 * `options` name another executable or environment than this process's.
 * @example const browser = await launchChromiumOrSkip(ctx);
 */
export async function launchChromiumOrSkip(
  ctx: { skip(note?: string): never },
  options: { executablePath?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Browser> {
  const executablePath = options.executablePath ?? CHROMIUM_PATH;
  if (!fs.existsSync(executablePath)) {
    const missing = `${executablePath} is not installed (apt-get install chromium)`;
    if (inCi(options.env)) throw new Error(`${missing}: the browser tests must run in CI`);
    console.warn(`[stratum tests] skipped a browser test: ${missing}`);
    ctx.skip(missing);
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
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
