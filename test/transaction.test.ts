import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createTransaction, type TransactionRuntime } from '../src/platform/db/transaction.ts';
import { pipeline } from '../src/platform/db/pipeline.ts';
import { bulkUpdate } from '../src/platform/db/bulk-update.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';
import type { Sql } from '../src/platform/db/connect.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await db.sql.unsafe(`
    create table items (id bigint primary key, value numeric not null default 0, note text);
    insert into items (id) select generate_series(1, 5);
    create function fail_with(state text) returns void language plpgsql as $$
      begin raise exception 'forced failure' using errcode = state; end $$;`);
});

afterAll(async () => {
  await db?.drop();
});

function runtime(sql: Sql, overrides: Partial<TransactionRuntime> = {}) {
  const events = { retries: [] as string[], deadlines: 0 };
  const rt: TransactionRuntime = {
    sql,
    defaultDeadlineMs: 2000,
    now: Date.now,
    random: () => 0.5,
    observer: { onRetry: (_l, state) => events.retries.push(state), onDeadlineExceeded: () => { events.deadlines++; } },
    ...overrides,
  };
  return { transaction: createTransaction(rt), events };
}

async function expectCode(promise: Promise<unknown>, code: string) {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(isAppError(error) ? error.code : error).toBe(code);
}

describe('transaction()', () => {
  it('commits the work of its function and returns its result', async () => {
    const { transaction } = runtime(db.sql);
    const result = await transaction({}, async (tx) => {
      await tx`update items set note = 'committed' where id = 1`;
      return 42;
    });
    expect(result).toBe(42);
    expect((await db.sql`select note from items where id = 1`)[0]!.note).toBe('committed');
  });

  it.each(['40001', '40P01'])('runs the whole function again after SQLSTATE %s, inside the deadline', async (state) => {
    const { transaction, events } = runtime(db.sql);
    await db.sql`update items set value = 0 where id = 2`;
    let attempts = 0;
    await transaction({ label: 'retry-test' }, async (tx) => {
      attempts++;
      await tx`update items set value = value + 1 where id = 2`;
      if (attempts < 3) await tx`select fail_with(${state})`;
    });
    expect(attempts).toBe(3);
    expect(events.retries).toEqual([state, state]);
    // the failed attempts rolled back: only the third increment counts
    expect((await db.sql`select value::int as v from items where id = 2`)[0]!.v).toBe(1);
  });

  it('does not retry other errors, and translates them', async () => {
    const { transaction, events } = runtime(db.sql);
    let attempts = 0;
    await expectCode(transaction({}, async (tx) => { attempts++; await tx`insert into items (id) values (1)`; }), 'DB.CONFLICT');
    expect(attempts).toBe(1);
    expect(events.retries).toEqual([]);
  });

  it('gives up with TX.DEADLINE_EXCEEDED when retries would outlive the deadline', async () => {
    const { transaction } = runtime(db.sql, { baseBackoffMs: 50, maxBackoffMs: 50, random: () => 1 });
    await expectCode(transaction({ deadlineMs: 120 }, async (tx) => { await tx`select fail_with('40001')`; }), 'TX.DEADLINE_EXCEEDED');
  });

  it('cancels a running statement at the deadline and commits nothing', async () => {
    const { transaction, events } = runtime(db.sql);
    await expectCode(transaction({ deadlineMs: 300 }, async (tx) => {
      await tx`update items set note = 'must not commit' where id = 3`;
      await tx`select pg_sleep(30)`;
    }), 'TX.DEADLINE_EXCEEDED');
    expect(events.deadlines).toBe(1);
    expect((await db.sql`select note from items where id = 3`)[0]!.note).toBeNull();
  });

  it('cancels from the client even when the server-side timeouts are lifted', async () => {
    const { transaction } = runtime(db.sql);
    await expectCode(transaction({ deadlineMs: 300 }, async (tx) => {
      // The function resets statement_timeout itself: only the client-side cancel can stop pg_sleep now.
      await tx`set local statement_timeout = 0`;
      await tx`update items set note = 'must not commit either' where id = 4`;
      await tx`select pg_sleep(30)`;
    }), 'TX.DEADLINE_EXCEEDED');
    expect((await db.sql`select note from items where id = 4`)[0]!.note).toBeNull();
  });

  it('refuses to commit work that finished after the deadline', async () => {
    const { transaction } = runtime(db.sql);
    await expectCode(transaction({ deadlineMs: 200 }, async (tx) => {
      await tx`update items set note = 'late' where id = 5`;
      await new Promise((r) => setTimeout(r, 400));
    }), 'TX.DEADLINE_EXCEEDED');
    expect((await db.sql`select note from items where id = 5`)[0]!.note).toBeNull();
  });

  it('fails at the deadline while waiting for a connection, and the late attempt never runs', async () => {
    const small = db.pool(1, `${db.applicationName}-small`);
    const { transaction } = runtime(small);
    let release!: () => void;
    const held = small.begin(async (tx) => { await tx`select 1`; await new Promise<void>((r) => { release = r; }); });
    await new Promise((r) => setTimeout(r, 50));
    let ran = false;
    await expectCode(transaction({ deadlineMs: 200 }, async (tx) => {
      ran = true;
      await tx`update items set note = 'queued' where id = 1`;
    }), 'TX.DEADLINE_EXCEEDED');
    release();
    await held;
    await new Promise((r) => setTimeout(r, 100));
    expect(ran).toBe(false);
    expect((await db.sql`select note from items where id = 1`)[0]!.note).toBe('committed');
    await small.end();
  });

  it('hands the connection back healthy: timeouts reset, nothing left in a transaction', async () => {
    const one = db.pool(1, `${db.applicationName}-one`);
    const { transaction } = runtime(one);
    await expectCode(transaction({ deadlineMs: 200 }, async (tx) => { await tx`select pg_sleep(5)`; }), 'TX.DEADLINE_EXCEEDED');
    const [row] = await one`select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt, pg_backend_pid() as pid`;
    expect(row).toMatchObject({ st: '0', lt: '0' });
    const [state] = await db.sql`select state from pg_stat_activity where pid = ${row!.pid}`;
    expect(state!.state).toBe('idle');
    await one.end();
  });

  it('uses the requested isolation level and read-only mode', async () => {
    const { transaction } = runtime(db.sql);
    const [level, readOnly] = await transaction({ isolation: 'serializable', readOnly: true }, async (tx) => {
      const [r] = await tx`select current_setting('transaction_isolation') as level, current_setting('transaction_read_only') as ro`;
      return [r!.level, r!.ro];
    });
    expect([level, readOnly]).toEqual(['serializable', 'on']);
    await expectCode(transaction({ readOnly: true }, async (tx) => { await tx`update items set note = 'x' where id = 1`; }), 'DB.ERROR');
  });
});

describe('pipeline() and bulkUpdate()', () => {
  it('returns the results of pipelined statements in order', async () => {
    const { transaction } = runtime(db.sql);
    const [a, b, c] = await transaction({}, (tx) => pipeline([
      tx`select 1 as n`, tx`update items set value = 10 where id = 1 returning value::text as v`, tx`select count(*)::int as n from items`,
    ] as const));
    expect(a[0]!.n).toBe(1);
    expect(b[0]!.v).toBe('10');
    expect(c[0]!.n).toBe(5);
  });

  it('updates each row with its own value in one statement', async () => {
    const changed = await bulkUpdate(db.sql, { table: 'items', idColumn: 'id', idType: 'bigint', column: 'value', valueType: 'numeric' },
      [1, 2, 3, 999], ['1.25', '2.50', '3.75', '9']);
    expect(changed).toBe(3);
    const rows = await db.sql`select id::int, value::text from items where id <= 3 order by id`;
    expect(rows.map((r) => r.value)).toEqual(['1.25', '2.50', '3.75']);
  });

  it('refuses identifiers that are not plain names', async () => {
    await expect(bulkUpdate(db.sql, { table: 'items; drop table items', idColumn: 'id', idType: 'bigint', column: 'value', valueType: 'numeric' }, [1], ['1']))
      .rejects.toThrow(/not a plain identifier/);
    await expect(bulkUpdate(db.sql, { table: 'items', idColumn: 'id', idType: 'bigint', column: 'value', valueType: 'numeric' }, [1, 2], ['1']))
      .rejects.toThrow(/2 ids but 1 values/);
  });
});
