import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStratum } from '../support/child.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

// `stratum shards` as a user runs it, on a database of its own with two shards.
let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ORDERS_SHARD_COUNT: '2' };
});
afterAll(async () => {
  await db?.drop();
});

describe('stratum shards', () => {
  it('shows the shards, adds one, rebalances onto it, and a second rebalance moves nothing', async () => {
    const before = await runStratum(['shards', 'status'], env);
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/bucket map version 1, 1024 buckets over 2 shard\(s\)/);
    expect(before.stdout).toMatch(/shard 0 .* 512 buckets +0 orders +ok/);

    const added = await runStratum(['shards', 'add', '--database', `${db.name}_orders_2`], env);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(
      /shard 2 added: .*_orders_2; it owns no bucket yet\. `stratum shards rebalance` moves (\d+) bucket\(s\) to it\./,
    );
    const toMove = Number(/moves (\d+) bucket/.exec(added.stdout)![1]);

    const moved = await runStratum(['shards', 'rebalance'], env);
    expect(moved.code).toBe(0);
    expect(moved.stdout.trim()).toMatch(new RegExp(`^moved ${toMove} bucket\\(s\\); map version \\d+$`));
    const after = await runStratum(['shards', 'status'], env);
    expect(after.stdout).toMatch(new RegExp(`shard 2 .* ${toMove} buckets +0 orders +ok`));
    expect((await runStratum(['shards', 'rebalance'], env)).stdout.trim()).toBe(
      'nothing to move: every bucket is on its shard',
    );

    // The same database once more: refused, and the catalog stays as it was.
    const again = await runStratum(['shards', 'add', '--database', `${db.name}_orders_2`], env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/_orders_2 is shard 2 already/);
    const status = await runStratum(['shards', 'status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/over 3 shard\(s\)/);
  });

  it.each([
    [['shards']],
    [['shards', 'add']],
    [['shards', 'add', 'not-a-url']],
    [['shards', 'status', 'extra']],
    [['shards', 'rebalance', '--database', 'x']],
  ])('exits 2 with the usage line for %j', async (args) => {
    const result = await runStratum(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/usage: stratum shards/);
  });
});
