import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createTransaction, type TransactionRuntime } from '../src/platform/db/transaction.ts';
import { pipeline } from '../src/platform/db/pipeline.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';
import { createPool, type Sql } from '../src/platform/db/connect.ts';

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
    observer: {
      onRetry: (_l, state) => events.retries.push(state),
      onDeadlineExceeded: () => {
        events.deadlines++;
      },
    },
    ...overrides,
  };
  return { transaction: createTransaction(rt), events };
}

/** Ends the session of `applicationName` while it runs COMMIT (waits up to 10 s for it to get there). */
async function cutWhileCommitting(applicationName: string): Promise<boolean> {
  for (let i = 0; i < 400; i++) {
    const [row] =
      await db.sql`select pid from pg_stat_activity where application_name = ${applicationName} and query = 'commit' and state = 'active'`;
    if (row && (await db.sql`select pg_terminate_backend(${row.pid}::int) as done`)[0]!.done === true) return true;
    if (!row) await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** `{ value }` when `promise` resolves within `ms`, else 'timeout'. */
function within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  return Promise.race([promise.then((value) => ({ value })), late]).finally(() => clearTimeout(timer));
}

/** A TCP relay to the test server; `delayFor(n)` is how long its n-th connection waits before reaching it. */
async function proxyTo(url: string, delayFor: (n: number) => number) {
  const target = new URL(url);
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.pause();
    setTimeout(() => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname || '127.0.0.1');
      sockets.add(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    }, delayFor(n++));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const relayed = new URL(url);
  relayed.hostname = '127.0.0.1';
  relayed.port = String((server.address() as net.AddressInfo).port);
  return {
    url: relayed.toString(),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

async function expectCode(promise: Promise<unknown>, code: string) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
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
    await expectCode(
      transaction({}, async (tx) => {
        attempts++;
        await tx`insert into items (id) values (1)`;
      }),
      'DB.CONFLICT',
    );
    expect(attempts).toBe(1);
    expect(events.retries).toEqual([]);
  });

  it('gives up with TX.DEADLINE_EXCEEDED when retries would outlive the deadline', async () => {
    const { transaction } = runtime(db.sql, { baseBackoffMs: 50, maxBackoffMs: 50, random: () => 1 });
    await expectCode(
      transaction({ deadlineMs: 120 }, async (tx) => {
        await tx`select fail_with('40001')`;
      }),
      'TX.DEADLINE_EXCEEDED',
    );
  });

  it('cancels a running statement at the deadline and commits nothing', async () => {
    const { transaction, events } = runtime(db.sql);
    await expectCode(
      transaction({ deadlineMs: 300 }, async (tx) => {
        await tx`update items set note = 'must not commit' where id = 3`;
        await tx`select pg_sleep(30)`;
      }),
      'TX.DEADLINE_EXCEEDED',
    );
    expect(events.deadlines).toBe(1);
    expect((await db.sql`select note from items where id = 3`)[0]!.note).toBeNull();
  });

  it('cancels from the client even when the server-side timeouts are lifted', async () => {
    const { transaction } = runtime(db.sql);
    await expectCode(
      transaction({ deadlineMs: 300 }, async (tx) => {
        // The function resets statement_timeout itself: only the client-side cancel can stop pg_sleep now.
        await tx`set local statement_timeout = 0`;
        await tx`update items set note = 'must not commit either' where id = 4`;
        await tx`select pg_sleep(30)`;
      }),
      'TX.DEADLINE_EXCEEDED',
    );
    expect((await db.sql`select note from items where id = 4`)[0]!.note).toBeNull();
  });

  it('refuses to commit work that finished after the deadline', async () => {
    const { transaction } = runtime(db.sql);
    await expectCode(
      transaction({ deadlineMs: 200 }, async (tx) => {
        await tx`update items set note = 'late' where id = 5`;
        await new Promise((r) => setTimeout(r, 400));
      }),
      'TX.DEADLINE_EXCEEDED',
    );
    expect((await db.sql`select note from items where id = 5`)[0]!.note).toBeNull();
  });

  it('fails with DB.POOL_EXHAUSTED at the deadline while waiting for a connection, and the late attempt never runs', async () => {
    const small = db.pool(1, `${db.applicationName}-small`);
    const { transaction } = runtime(small);
    let release!: () => void;
    const held = small.begin(async (tx) => {
      await tx`select 1`;
      await new Promise<void>((r) => {
        release = r;
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    let ran = false;
    await expectCode(
      transaction({ deadlineMs: 200 }, async (tx) => {
        ran = true;
        await tx`update items set note = 'queued' where id = 1`;
      }),
      'DB.POOL_EXHAUSTED',
    );
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
    await expectCode(
      transaction({ deadlineMs: 200 }, async (tx) => {
        await tx`select pg_sleep(5)`;
      }),
      'TX.DEADLINE_EXCEEDED',
    );
    const [row] =
      await one`select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt, pg_backend_pid() as pid`;
    expect(row).toMatchObject({ st: '0', lt: '0' });
    const [state] = await db.sql`select state from pg_stat_activity where pid = ${row!.pid}`;
    expect(state!.state).toBe('idle');
    await one.end();
  });

  /** Holds `lock table items in <mode>` on another connection until the returned release() is called. */
  async function holdTableLock(mode: string) {
    const holder = db.pool(1, `${db.applicationName}-holder`);
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const holding = holder.begin(async (tx) => {
      await tx.unsafe(`lock table items in ${mode} mode`);
      locked();
      await new Promise<void>((r) => {
        release = r;
      });
    });
    await isLocked;
    return async () => {
      release();
      await holding;
      await holder.end();
    };
  }

  it('cancels the running statement, not a pipelined one queued behind it, and frees the connection', async () => {
    const one = db.pool(1, `${db.applicationName}-pipelined`);
    const { transaction } = runtime(one);
    const release = await holdTableLock('share');
    try {
      await expectCode(
        transaction({ deadlineMs: 300 }, (tx) =>
          pipeline([
            tx`lock table items in share row exclusive mode`,
            tx`update items set note = 'queued behind the lock' where id = 1`,
          ]),
        ),
        'TX.DEADLINE_EXCEEDED',
      );
      // The same (only) connection is usable again, outside any transaction.
      const [row] = await one`select current_setting('statement_timeout') as st, pg_backend_pid() as pid`;
      expect(row!.st).toBe('0');
      const [activity] = await db.sql`select state from pg_stat_activity where pid = ${row!.pid}`;
      expect(activity!.state).toBe('idle');
    } finally {
      await release();
      await one.end();
    }
    expect((await db.sql`select note from items where id = 1`)[0]!.note).not.toBe('queued behind the lock');
  });

  it('fails a statement issued after the deadline at once instead of giving it a fresh timeout', async () => {
    const { transaction } = runtime(db.sql);
    const release = await holdTableLock('exclusive');
    let outcome!: (value: string) => void;
    const lateStatement = new Promise<string>((r) => {
      outcome = r;
    });
    try {
      await expectCode(
        transaction({ deadlineMs: 150 }, async (tx) => {
          await new Promise((r) => setTimeout(r, 300));
          // Behind an exclusive lock, this would wait until the lock is released if it were sent.
          await tx`update items set note = 'after the deadline' where id = 2`.then(
            () => outcome('ran'),
            () => outcome('refused'),
          );
        }),
        'TX.DEADLINE_EXCEEDED',
      );
      expect(await lateStatement).toBe('refused');
    } finally {
      await release();
    }
    expect((await db.sql`select note from items where id = 2`)[0]!.note).toBeNull();
  });

  it('survives a cancel that cannot reach its host (multi-host URL whose first host is down)', async () => {
    const u = new URL(db.url);
    const multi = `postgres://${u.username}${u.password ? `:${u.password}` : ''}@127.0.0.1:1,${u.host}${u.pathname}`;
    const pool = createPool(
      { url: multi },
      { max: 1, applicationName: `${db.applicationName}-multi`, connectTimeoutSeconds: 2 },
    );
    const { transaction } = runtime(pool);
    try {
      await expectCode(
        transaction({ deadlineMs: 300 }, async (tx) => {
          await tx`select pg_sleep(5)`;
        }),
        'TX.DEADLINE_EXCEEDED',
      );
      expect((await pool`select 1 as one`)[0]!.one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('runs a write again after 25006 (read-only) on a pool that wants the primary, but not a read-only transaction', async () => {
    const u = new URL(db.url);
    // The same server twice, primary wanted: the pool is a multi-host one, as on a cluster.
    const multi = `postgres://${u.username}${u.password ? `:${u.password}` : ''}@${u.host},${u.host}${u.pathname}?target_session_attrs=primary`;
    const pool = createPool(
      { url: multi },
      { max: 1, applicationName: `${db.applicationName}-primary`, connectTimeoutSeconds: 2 },
    );
    const { transaction, events } = runtime(pool);
    try {
      await db.sql`update items set value = 0 where id = 4`;
      let attempts = 0;
      await transaction({ label: 'not-primary-yet' }, async (tx) => {
        attempts++;
        // As on a node still in recovery: the write is refused with 25006.
        if (attempts === 1) await tx`set transaction read only`;
        await tx`update items set value = value + 1 where id = 4`;
      });
      expect(attempts).toBe(2);
      expect(events.retries).toEqual(['25006']);
      expect((await db.sql`select value::int as v from items where id = 4`)[0]!.v).toBe(1);

      let readOnlyAttempts = 0;
      await expectCode(
        transaction({ readOnly: true }, async (tx) => {
          readOnlyAttempts++;
          await tx`update items set value = value + 1 where id = 4`;
        }),
        'DB.ERROR',
      );
      expect(readOnlyAttempts).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('runs the whole function again when its connection is cut before COMMIT, and commits once', async () => {
    const { transaction, events } = runtime(db.sql);
    await db.sql`update items set value = 0 where id = 3`;
    let attempts = 0;
    await transaction({ label: 'cut-connection' }, async (tx) => {
      attempts++;
      await tx`update items set value = value + 1 where id = 3`;
      // The server ends this session (57P01, as at a failover's fast shutdown) before COMMIT is sent.
      if (attempts === 1) await tx`select pg_terminate_backend(pg_backend_pid())`;
    });
    expect(attempts).toBe(2);
    expect(events.retries).toHaveLength(1);
    expect(['57P01', 'CONNECTION_CLOSED']).toContain(events.retries[0]);
    expect((await db.sql`select value::int as v from items where id = 3`)[0]!.v).toBe(1);
  });

  it('never runs a transaction again once COMMIT was sent: a connection cut then is DB.UNAVAILABLE, outcome unknown', async () => {
    const one = db.pool(1, `${db.applicationName}-committing`);
    await db.sql.unsafe(`
      create table slow_commits (id int primary key);
      create function sleep_at_commit() returns trigger language plpgsql as $$ begin perform pg_sleep(30); return null; end $$;
      create constraint trigger sleep_at_commit after insert on slow_commits deferrable initially deferred
        for each row execute function sleep_at_commit();`);
    const { transaction, events } = runtime(one);
    let attempts = 0;
    const outcome = transaction({ deadlineMs: 20_000 }, async (tx) => {
      attempts++;
      await tx`insert into slow_commits (id) values (1)`;
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Cut the session while it runs COMMIT (the deferred trigger sleeps there).
    expect(await cutWhileCommitting(`${db.applicationName}-committing`)).toBe(true);
    const error = await outcome;
    expect(isAppError(error, 'DB.UNAVAILABLE')).toBe(true);
    expect((error as { details?: unknown }).details).toEqual({ commitOutcome: 'unknown' });
    expect(attempts).toBe(1);
    expect(events.retries).toEqual([]);
    // postgres.js keeps waiting for the query the server cut unless told how long to wait.
    await one.end({ timeout: 1 });
  });

  it('runs work that may commit twice again when the connection breaks during COMMIT (rerunIfCommitUnknown)', async () => {
    const one = db.pool(1, `${db.applicationName}-rerun`);
    await db.sql.unsafe(`
      create table rerun_commits (id int primary key, name text not null);
      insert into rerun_commits values (1, 'before');
      create sequence rerun_commit_sleeps;
      -- Only the first COMMIT sleeps, long enough to be cut.
      create function sleep_at_first_commit() returns trigger language plpgsql as $$
        begin if nextval('rerun_commit_sleeps') = 1 then perform pg_sleep(30); end if; return null; end $$;
      create constraint trigger sleep_at_first_commit after update on rerun_commits deferrable initially deferred
        for each row execute function sleep_at_first_commit();`);
    const { transaction, events } = runtime(one);
    let attempts = 0;
    const outcome = transaction({ deadlineMs: 20_000, rerunIfCommitUnknown: true }, async (tx) => {
      attempts++;
      await tx`update rerun_commits set name = 'after' where id = 1`;
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(await cutWhileCommitting(`${db.applicationName}-rerun`)).toBe(true);
    expect(await outcome).toBeUndefined();
    expect(attempts).toBe(2);
    expect(events.retries.length).toBeGreaterThanOrEqual(1);
    expect((await db.sql`select name from rerun_commits where id = 1`)[0]!.name).toBe('after');
    await one.end({ timeout: 1 });
  });

  it('fails with DB.UNAVAILABLE at the deadline, not TX.DEADLINE_EXCEEDED, when the server refuses connections', async () => {
    const refused = createPool(
      { url: 'postgres://nobody@127.0.0.1:1/x' },
      { max: 1, applicationName: 'refused', connectTimeoutSeconds: 1 },
    );
    const { transaction, events } = runtime(refused);
    let ran = false;
    try {
      await expectCode(
        transaction({ deadlineMs: 300 }, async () => {
          ran = true;
        }),
        'DB.UNAVAILABLE',
      );
      expect(ran).toBe(false);
      expect(events.retries.length).toBeGreaterThan(0);
    } finally {
      await refused.end({ timeout: 0 });
    }
  });

  it('uses the requested isolation level and read-only mode', async () => {
    const { transaction } = runtime(db.sql);
    const [level, readOnly] = await transaction({ isolation: 'serializable', readOnly: true }, async (tx) => {
      const [r] =
        await tx`select current_setting('transaction_isolation') as level, current_setting('transaction_read_only') as ro`;
      return [r!.level, r!.ro];
    });
    expect([level, readOnly]).toEqual(['serializable', 'on']);
    await expectCode(
      transaction({ readOnly: true }, async (tx) => {
        await tx`update items set note = 'x' where id = 1`;
      }),
      'DB.ERROR',
    );
  });
});

describe('transaction({ readOnly: true, autocommit: true })', () => {
  it('runs each statement on its own, without BEGIN', async () => {
    const { transaction } = runtime(db.sql);
    // A setting local to a transaction outlives the statement that made it only inside a transaction.
    const alone = async (autocommit: boolean) =>
      transaction({ readOnly: true, autocommit }, async (tx) => {
        await tx`select set_config('stratum.probe', 'set', true)`;
        return (await tx`select current_setting('stratum.probe', true) as probe`)[0]!.probe !== 'set';
      });
    expect(await alone(true)).toBe(true);
    expect(await alone(false)).toBe(false);
  });

  it('runs the read again when its connection is cut', async () => {
    const { transaction, events } = runtime(db.sql);
    let attempts = 0;
    const value = await transaction({ label: 'cut-read', readOnly: true, autocommit: true }, async (tx) => {
      attempts++;
      if (attempts === 1) await tx`select pg_terminate_backend(pg_backend_pid())`;
      return (await tx`select 7 as seven`)[0]!.seven as number;
    });
    expect(value).toBe(7);
    expect(attempts).toBe(2);
    expect(['57P01', 'CONNECTION_CLOSED']).toContain(events.retries[0]);
  });

  it('cancels a running statement at the deadline and hands the connection back', async () => {
    const one = db.pool(1, `${db.applicationName}-autocommit`);
    const { transaction, events } = runtime(one);
    try {
      await expectCode(
        transaction({ deadlineMs: 300, readOnly: true, autocommit: true }, async (tx) => {
          await tx`select pg_sleep(30)`;
        }),
        'TX.DEADLINE_EXCEEDED',
      );
      expect(events.deadlines).toBe(1);
      // Not cancelled, the sleep would hold the pool's one connection for 30 s.
      expect(await within(one`select 1 as one`, 5000)).toEqual({ value: [{ one: 1 }] });
    } finally {
      await one.end({ timeout: 0 });
    }
  });

  it('gives the connection back when the deadline passes while it is still being opened', async () => {
    const slow = await proxyTo(db.url, (n) => (n === 0 ? 500 : 0));
    const small = createPool({ url: slow.url }, { max: 1, applicationName: `${db.applicationName}-opening` });
    const { transaction } = runtime(small);
    try {
      await expectCode(
        transaction({ deadlineMs: 150, readOnly: true, autocommit: true }, async (tx) => tx`select 1`),
        'TX.DEADLINE_EXCEEDED',
      );
      expect(await within(small`select 2 as two`, 5000)).toEqual({ value: [{ two: 2 }] });
    } finally {
      await small.end({ timeout: 0 });
      slow.close();
    }
  });

  it('gives a statement queued behind it on the same connection its own answer', async () => {
    const small = db.pool(1, `${db.applicationName}-pipelined`);
    await small`select 1`;
    try {
      const first = small`select pg_sleep(0.3), 'first' as v`.execute();
      await new Promise((r) => setTimeout(r, 10));
      const late = runtime(small).transaction(
        { deadlineMs: 150, readOnly: true, autocommit: true },
        async (tx) => tx`select 'late' as v`,
      );
      await new Promise((r) => setTimeout(r, 10));
      const next = small`select 'next' as v`.execute();
      const [, answered, own] = await Promise.allSettled([first, late, next]);
      expect(answered.status).toBe('rejected');
      expect(own).toEqual({ status: 'fulfilled', value: [{ v: 'next' }] });
    } finally {
      await small.end({ timeout: 0 });
    }
  });

  it('keeps the connection until its cancel request landed: the next statement on it is not cancelled', async () => {
    // Every connection after the first, the cancel request's included, takes 60 ms to reach the server.
    const far = await proxyTo(db.url, (n) => (n === 0 ? 0 : 60));
    const small = createPool({ url: far.url }, { max: 1, applicationName: `${db.applicationName}-late-cancel` });
    try {
      await small`select 1`;
      const cut = runtime(small).transaction(
        { deadlineMs: 200, readOnly: true, autocommit: true },
        async (tx) => tx`select pg_sleep(0.23)`,
      );
      await new Promise((r) => setTimeout(r, 20));
      const next = small`select pg_sleep(0.3), 'next' as v`.execute();
      const [, own] = await Promise.allSettled([cut, next]);
      expect(own).toMatchObject({ status: 'fulfilled', value: [{ v: 'next' }] });
    } finally {
      await small.end({ timeout: 0 });
      far.close();
    }
  });

  it('drops a statement still waiting for a connection at the deadline: it never runs', async () => {
    await db.sql`create sequence if not exists autocommit_probe`;
    const small = db.pool(1, `${db.applicationName}-autocommit-small`);
    const { transaction } = runtime(small);
    let release!: () => void;
    const held = small.begin(async (tx) => {
      await tx`select 1`;
      await new Promise<void>((r) => {
        release = r;
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    try {
      await expectCode(
        transaction({ deadlineMs: 200, readOnly: true, autocommit: true }, async (tx) => {
          await tx`select nextval('autocommit_probe')`;
        }),
        'DB.POOL_EXHAUSTED',
      );
    } finally {
      release();
      await held;
    }
    await small`select 1`;
    expect((await db.sql`select is_called from autocommit_probe`)[0]!.is_called).toBe(false);
    await small.end();
  });

  it('refuses work that is not read-only', async () => {
    const { transaction } = runtime(db.sql);
    let ran = false;
    await expect(
      transaction({ autocommit: true }, async () => {
        ran = true;
      }),
    ).rejects.toThrow(TypeError);
    expect(ran).toBe(false);
  });
});

describe('pipeline()', () => {
  it('returns the results of pipelined statements in order', async () => {
    const { transaction } = runtime(db.sql);
    const [a, b, c] = await transaction({}, (tx) =>
      pipeline([
        tx`select 1 as n`,
        tx`update items set value = 10 where id = 1 returning value::text as v`,
        tx`select count(*)::int as n from items`,
      ] as const),
    );
    expect(a[0]!.n).toBe(1);
    expect(b[0]!.v).toBe('10');
    expect(c[0]!.n).toBe(5);
  });
});
