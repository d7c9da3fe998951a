import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { runStratum, serveStratum } from './support/child.ts';
import { mainMigrations as allMigrations } from '../src/app/migrations.ts';

// The process-level contract of `npm start` and the CLI on the embedded default, with a home of its own.
const home = path.resolve(`.stratum-test-cli-${randomBytes(4).toString('hex')}`);
const env = { STRATUM_HOME: home, DATABASE_URL: '' };

function dataDir(): string {
  const pointer = path.join(home, 'pg-location');
  const root = fs.existsSync(pointer) ? fs.readFileSync(pointer, 'utf8').trim() : path.join(home, 'pg');
  return path.join(root, 'data');
}

function serverRunning(): boolean {
  return fs.existsSync(path.join(dataDir(), 'postmaster.pid'));
}

afterAll(async () => {
  const pointer = path.join(home, 'pg-location');
  if (fs.existsSync(pointer)) fs.rmSync(fs.readFileSync(pointer, 'utf8').trim(), { recursive: true, force: true });
  fs.rmSync(home, { recursive: true, force: true });
});

describe('stratum serve and the CLI on the embedded PostgreSQL', () => {
  it('serves, shares its server with CLI commands, stops cleanly on SIGINT and finds its data again', async () => {
    const first = await serveStratum(env);
    const created = await fetch(`${first.url}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'kept', profile: { firstname: 'K', lastname: 'P' } }),
    });
    expect(created.status).toBe(201);

    const status = await runStratum(['migrate', 'status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/applied\s+users\/0001 create_users/);
    // Each orders shard the server opened is listed with its own migrations.
    expect(status.stdout).toMatch(/^shard 0 \(\S+_orders_0\):\n\s+applied\s+shard\/0001 create_shard/m);
    expect(status.stdout).toMatch(/^shard 3 \(\S+_orders_3\):/m);
    expect(status.stderr).toMatch(/using the embedded PostgreSQL of the running server/);

    const second = await runStratum(['serve'], { ...env, PORT: '0' });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/already in use by a running stratum server/);

    first.child.kill('SIGINT');
    const done = await first.exited;
    expect(done.code).toBe(0);
    expect(done.stderr).toMatch(/stopped/);
    expect(serverRunning()).toBe(false);
    expect(fs.existsSync(path.join(home, 'owner.json'))).toBe(false);

    const again = await serveStratum(env);
    const found = await fetch(`${again.url}/users/1`);
    expect(found.status).toBe(200);
    expect((await found.json()).username).toBe('kept');
    again.child.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  });

  it('starts the server for a command when none runs, and stops it afterwards; commands take turns', async () => {
    expect(serverRunning()).toBe(false);
    const [a, b] = await Promise.all([runStratum(['migrate', 'status'], env), runStratum(['migrate', 'status'], env)]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.stdout).toMatch(/applied\s+users\/0001/);
    expect(b.stdout).toEqual(a.stdout);
    expect(serverRunning()).toBe(false);

    const newest = allMigrations().at(-1)!;
    const down = await runStratum(['migrate', 'down', '1'], env);
    expect(down.stdout.trim()).toBe(`reverted ${newest.context}/${newest.version} ${newest.name}`);
    const up = await runStratum(['migrate', 'up'], env);
    expect(up.stdout.trim()).toBe(`applied ${newest.context}/${newest.version} ${newest.name}`);
    const bad = await runStratum(['migrate', 'down', 'x'], env);
    expect(bad.code).toBe(2);
  });

  it('exits non-zero with one line naming the host when DATABASE_URL is unreachable', async () => {
    const result = await runStratum(
      ['serve'],
      { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nothing', PORT: '0' },
      15_000,
    );
    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^stratum: cannot reach PostgreSQL at 127\.0\.0\.1:1: /);
  });

  it('rejects unknown commands with usage', async () => {
    const result = await runStratum(['frobnicate'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown command/);
  });
});

describe("stratum help and each command's --help (no database, no configuration read)", () => {
  // PORT is refused by the configuration: help must not read it.
  const badEnv = { ...env, PORT: 'not-a-port' };

  it.each([
    ['migrate', /^usage: stratum migrate up \| down \[n\] \| status\n\n {2}up /],
    ['shards', /^usage: stratum shards status \| add <postgres-url> \| add --database <name> \| rebalance\n/],
    ['import', /^usage: stratum import order-items --order <id> --file <items.csv>/],
    ['seed', /^usage: stratum seed accounts \[--count N\] \[--start S\]\n/],
    ['dlq', /^usage: stratum dlq list --group G \[--limit N\]\n/],
    ['serve', /^usage: stratum serve\n/],
  ])('%s --help prints its own usage', async (command, usage) => {
    for (const flag of ['--help', '-h']) {
      const result = await runStratum([command, flag], badEnv);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(usage);
      expect(result.stdout).not.toMatch(/^Commands:/m);
      expect(result.stderr).toBe('');
    }
  });

  it('migrate --help after an action prints the usage too, and applies nothing', async () => {
    const result = await runStratum(['migrate', 'up', '--help'], badEnv);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: stratum migrate /);
  });

  it('lists the product commands only, and points to the tools', async () => {
    const result = await runStratum(['help'], env);
    expect(result.code).toBe(0);
    for (const command of ['serve', 'migrate up', 'seed accounts', 'import order-items', 'dlq list', 'shards status'])
      expect(result.stdout).toMatch(new RegExp(`^  ${command}`, 'm'));
    expect(result.stdout).not.toMatch(/^ {2}(lab|chaos|loadtest)\b/m);
    expect(result.stdout).toMatch(/`npm run tools -- help`/);
  });

  it.each([
    ['lab', 'up'],
    ['chaos', 'failover'],
    ['loadtest', 'accounts-read'],
  ])('stratum %s %s points to npm run tools', async (command, arg) => {
    const result = await runStratum([command, arg], badEnv);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim()).toBe(
      `stratum: ${command} is not a stratum command but a tool: run \`npm run tools -- ${command} ${arg}\``,
    );
  });
});
