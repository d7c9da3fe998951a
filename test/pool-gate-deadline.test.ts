import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPool, type Sql } from '../src/platform/db/connect.ts';
import { withDeadline } from '../src/platform/db/deadline-scope.ts';
import { poolGateOf } from '../src/platform/db/pool-gate.ts';
import { createTransaction } from '../src/platform/db/transaction.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// A pool of 2 whose both connections are held: a third caller of any kind (a plain query, unsafe, reserve,
// begin, transaction(), COPY) is refused with DB.POOL_EXHAUSTED within its deadline + 100 ms, and nothing of
// its work runs. Once a connection is given back, a waiting caller gets it.
const DEADLINE_MS = 300;
let db: TestDatabase;
let sql: Sql;
let inspect: Sql;
let held: Array<Awaited<ReturnType<Sql['reserve']>>> = [];

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  inspect = db.pool(1);
  await inspect`create table gate_probe (id serial primary key, note text not null)`;
  sql = createPool(
    { url: db.url },
    { max: 2, applicationName: db.applicationName, name: 'gate-test', acquireWaitMs: DEADLINE_MS },
  );
});

afterAll(async () => {
  for (const c of held) c.release();
  await sql?.end({ timeout: 5 });
  await db?.drop();
});

beforeEach(async () => {
  for (const c of held.splice(0)) c.release();
  held = [await sql.reserve(), await sql.reserve()];
  expect(poolGateOf(sql)!.state()).toMatchObject({ inUse: 2, waiting: 0 });
});

const rows = async () => (await inspect<{ n: number }[]>`select count(*)::int as n from gate_probe`)[0]!.n;

/** Runs `work` under a deadline of DEADLINE_MS and returns the error it failed with and how long that took. */
async function refusedWithin(work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  const error = await withDeadline(started + DEADLINE_MS, work).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, ms: Date.now() - started };
}

const transaction = () => createTransaction({ sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });

const kinds: Record<string, () => Promise<unknown>> = {
  'a plain query': () => sql`insert into gate_probe (note) values ('plain')`,
  'unsafe()': () => sql.unsafe(`insert into gate_probe (note) values ('unsafe')`),
  'reserve()': async () => {
    const c = await sql.reserve();
    await c`insert into gate_probe (note) values ('reserved')`;
    c.release();
  },
  'begin()': () => sql.begin((tx) => tx`insert into gate_probe (note) values ('begin')`),
  'transaction()': () =>
    transaction()({ label: 'gate.probe' }, (tx) => tx`insert into gate_probe (note) values ('transaction')`),
  COPY: async () => {
    const writable = await sql.unsafe('copy gate_probe (note) from stdin').writable();
    await pipeline(Readable.from(['copied\n']), writable);
  },
};

describe('a saturated pool of 2', () => {
  for (const [kind, work] of Object.entries(kinds)) {
    it(`refuses ${kind} with DB.POOL_EXHAUSTED within its deadline + 100 ms, and nothing of it runs`, async () => {
      const { error, ms } = await refusedWithin(work);
      expect(isAppError(error, 'DB.POOL_EXHAUSTED'), String(error)).toBe(true);
      expect((error as { details?: { pool?: string } }).details?.pool).toBe('gate-test');
      expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS - 5);
      expect(ms).toBeLessThan(DEADLINE_MS + 100);
      expect(await rows()).toBe(0);
      const state = poolGateOf(sql)!.state();
      expect(state).toMatchObject({ inUse: 2, waiting: 0 });
      expect(state.refused).toBeGreaterThan(0);
      for (const c of held.splice(0)) c.release();
      expect(poolGateOf(sql)!.state()).toMatchObject({ inUse: 0, waiting: 0 });
    });
  }

  it("refuses a caller outside any deadline scope after the pool's own wait (acquireWaitMs)", async () => {
    const started = Date.now();
    const error = await sql`select 1`.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAppError(error, 'DB.POOL_EXHAUSTED'), String(error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS + 100);
  });

  it('refuses at once a caller whose deadline has already passed', async () => {
    const started = Date.now();
    const error = await withDeadline(started - 1, () => sql`select 1`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAppError(error, 'DB.POOL_EXHAUSTED'), String(error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(50);
  });

  it('hands a connection given back to the callers waiting for one, in arrival order, within their deadlines', async () => {
    const order: string[] = [];
    const first = withDeadline(Date.now() + 2000, () =>
      sql`insert into gate_probe (note) values ('first') returning id`.then(() => order.push('first')),
    );
    const second = withDeadline(Date.now() + 2000, () =>
      sql`insert into gate_probe (note) values ('second') returning id`.then(() => order.push('second')),
    );
    await expect.poll(() => poolGateOf(sql)!.state().waiting).toBe(2);
    held.shift()!.release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
    expect(await rows()).toBe(2);
    await inspect`truncate gate_probe`;
    for (const c of held.splice(0)) c.release();
    expect(poolGateOf(sql)!.state()).toMatchObject({ inUse: 0, waiting: 0 });
  });
});
