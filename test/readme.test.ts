import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStratum, type Finished, type Served } from './support/child.ts';

// The README is part of the product: its Layout section describes the tree as it is, and every command block in
// it works when pasted into a fresh shell while `npm start` runs (or says why it is not run here).
const README = fs.readFileSync('README.md', 'utf8');

/** The text of a `## ` section, up to the next `## ` heading (its `### ` subsections included). */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${heading}" section`);
  const next = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, next < 0 ? undefined : next);
}

/** `dir`'s entries as the Layout names them: `dir/name/` for a folder, `dir/name` for a file. */
function entries(dir: string, only: 'all' | 'folders' = 'all'): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => only === 'all' || e.isDirectory())
    .map((e) => `${dir}/${e.name}${e.isDirectory() ? '/' : ''}`)
    .sort();
}

/** Repository paths written in backticks (`src/app/contexts.ts`), placeholders like `<name>` left out. */
function pathsNamed(text: string): string[] {
  const roots = /^(src|tools|bench|test|docs|scripts|bin|patches)\//;
  return [...text.matchAll(/`([^`\s]+)`/g)]
    .map((m) => m[1]!)
    .filter((p) => roots.test(p) && !p.includes('<') && !p.includes('*'));
}

describe('README.md: Layout', () => {
  const layout = section(README, 'Layout');

  it('describes every entry at the top of src/, in src/platform/ and src/contexts/, and every tool', () => {
    const expected = [
      ...entries('src'),
      ...entries('src/platform'),
      ...entries('src/contexts'),
      ...entries('tools', 'folders'),
    ];
    const missing = expected.filter((entry) => !layout.includes(`\`${entry}\``));
    expect(missing, 'entries the Layout section of README.md does not describe').toEqual([]);
  });

  it('names only paths that exist', () => {
    const gone = pathsNamed(layout).filter((p) => !fs.existsSync(path.resolve(p)));
    expect(gone, 'paths in the Layout section of README.md that do not exist').toEqual([]);
  });
});

/** A ```sh block of the README: where it is, what it runs, and why it is not run here when it is marked so. */
interface CommandBlock {
  line: number;
  heading: string;
  script: string;
  skip?: string;
}

const SKIP_MARK = /^<!-- readme-test: skip \((.+)\) -->$/;

/** Every fenced block's opening line with its language, and the ```sh blocks with the marker on the line before. */
function commandBlocks(markdown: string): { fences: { line: number; lang: string }[]; blocks: CommandBlock[] } {
  const lines = markdown.split('\n');
  const fences: { line: number; lang: string }[] = [];
  const blocks: CommandBlock[] = [];
  let heading = '(top)';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^#{2,3} /.test(line)) heading = line.replace(/^#+ /, '');
    const open = /^```(\S*)\s*$/.exec(line);
    if (!open) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`README.md line ${i + 1}: the block is never closed`);
    fences.push({ line: i + 1, lang: open[1]! });
    if (open[1] === 'sh') {
      const skip = SKIP_MARK.exec(lines[i - 1] ?? '')?.[1];
      blocks.push({ line: i + 1, heading, script: lines.slice(i + 1, end).join('\n'), ...(skip ? { skip } : {}) });
    }
    i = end;
  }
  return { fences, blocks };
}

const README_URL = 'http://127.0.0.1:8080';

/**
 * Strict bash, with curl failing on an HTTP error status (printing the answer): a README example that answers 404
 * fails here, while a reader's pasted `curl -s` still shows the problem+json.
 */
const PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body --show-error "$@"; }\n';

function runBash(script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', PRELUDE + script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('README.md and docs/: names that exist', () => {
  const files = ['README.md', 'docs/sharding.md', 'docs/reliability.md'];

  it('names only repository paths that exist', () => {
    const gone = files.flatMap((file) =>
      pathsNamed(fs.readFileSync(file, 'utf8'))
        .filter((p) => !fs.existsSync(path.resolve(p)))
        .map((p) => `${file}: ${p}`),
    );
    expect(gone, 'paths named in backticks that do not exist').toEqual([]);
  });

  it('names no setting or table that was removed', () => {
    const removed = ['CATALOG_URL', 'sharding.simulated_charges', 'bulkUpdate'];
    const found = files.flatMap((file) => {
      const text = fs.readFileSync(file, 'utf8');
      return removed.filter((name) => text.includes(name)).map((name) => `${file}: ${name}`);
    });
    expect(found).toEqual([]);
  });
});

describe('README.md: every command block', () => {
  const { fences, blocks } = commandBlocks(README);
  const run = blocks.filter((b) => b.skip === undefined);
  const skipped = blocks.filter((b) => b.skip !== undefined);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-readme-'));
  const home = path.join(root, 'home');
  const tmp = path.join(root, 'tmp');
  let server: Served | undefined;

  beforeAll(async () => {
    fs.mkdirSync(tmp);
    console.log(
      `[readme] ${run.length} block(s) run, ${skipped.length} skipped:\n` +
        skipped.map((b) => `  line ${b.line} (${b.heading}): ${b.skip}`).join('\n'),
    );
    // A server as `npm start` runs it, on an embedded PostgreSQL of its own and a free port.
    server = await serveStratum({ STRATUM_HOME: home, DATABASE_URL: '', DATABASE_READ_URL: '' }, 90_000);
  }, 120_000);

  afterAll(async () => {
    if (server) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const pointer = path.join(home, 'pg-location');
    if (fs.existsSync(pointer)) fs.rmSync(fs.readFileSync(pointer, 'utf8').trim(), { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('marks a block only to skip it, with a reason, and writes commands in ```sh blocks', () => {
    const stray = README.split('\n').flatMap((line, i, all) =>
      line.startsWith('<!-- readme-test') && (!SKIP_MARK.test(line) || all[i + 1] !== '```sh') ? [i + 1] : [],
    );
    expect(stray, 'README.md lines with a readme-test comment that is not a skip mark before a ```sh block').toEqual(
      [],
    );
    const shells = fences.filter((f) => ['', 'bash', 'shell', 'console', 'zsh'].includes(f.lang));
    expect(shells, 'README.md blocks that look like commands but are not ```sh (so never run)').toEqual([]);
    expect(run.length).toBeGreaterThan(0);
  });

  for (const block of run) {
    it(`runs the block at line ${block.line} (${block.heading})`, async () => {
      const started = Date.now();
      const done = await runBash(
        block.script.replaceAll(README_URL, server!.url),
        { ...process.env, STRATUM_HOME: home, DATABASE_URL: '', DATABASE_READ_URL: '', TMPDIR: tmp },
        60_000,
      );
      console.log(`[readme] line ${block.line} (${block.heading}): exit ${done.code} in ${Date.now() - started} ms`);
      expect(
        done.code,
        `README.md line ${block.line} failed:\n${block.script}\n--- stdout\n${done.stdout}\n--- stderr\n${done.stderr}`,
      ).toBe(0);
    }, 70_000);
  }
});
