import { spawn } from 'node:child_process';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactScores, scoreLogStatus } from '../src/contexts/users/deferred-scores.ts';
import type { Sql } from '../src/platform/db/connect.ts';
import { runStratum } from './support/child.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { addCreation, allUsers, expectSameScores, type ScoredUser } from './support/scores.ts';

// SCORE_MODE=deferred against the eager mode (decision 0031): the same creations on two databases, every
// user's score compared after each step, before and after compactions; switching modes; a compaction killed.

const body = (username: string, score: number) => ({
  username,
  score,
  profile: { firstname: `F_${username}`, lastname: `L_${username}` },
});

async function create(app: TestApp, username: string, score: number) {
  const res = await app.app.inject({ method: 'POST', url: '/users', payload: body(username, score) });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as ScoredUser & { scoreFanout?: string };
}

async function reset(sql: Sql): Promise<void> {
  await sql`truncate users.user_profile, users.users, users.actions, users.score_log restart identity cascade`;
  await sql`insert into users.score_log (k, n, a, b) values (0, null, 1, 0)`;
}

/** `count` users with varied scores (some negative), loaded set-based as a bulk load would. */
async function seed(sql: Sql, count: number): Promise<void> {
  await sql`
    insert into users.users (username, score)
    select 'seed' || i, ((hashtext(i::text) % 200000) / 1000.0)::numeric from generate_series(1, ${count}) i`;
  await sql`insert into users.user_profile (user_id, firstname, lastname) select id, 'F', 'L' from users.users`;
  await sql`vacuum analyze users.users`;
}

const deferredOptions = { scoreMode: 'deferred', scoreCompactionIntervalMs: 0 } as const;

describe('SCORE_MODE=deferred answers what the eager mode answers', () => {
  let eagerDb: TestDatabase;
  let deferredDb: TestDatabase;
  let eager: TestApp;
  let deferred: TestApp;

  beforeAll(async () => {
    [eagerDb, deferredDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    eager = await startTestApp(eagerDb, { scoreMode: 'sync' });
    deferred = await startTestApp(deferredDb, deferredOptions);
  });

  afterAll(async () => {
    await eager?.close();
    await deferred?.close();
    await eagerDb?.drop();
    await deferredDb?.drop();
  });

  const score = fc.oneof(
    fc.constant(0),
    fc.integer({ min: -50, max: 50 }),
    fc.double({ min: -1, max: 1, noNaN: true }),
    fc.double({ min: -1e15, max: 1e15, noNaN: true }),
  );
  const step = fc.oneof(
    { weight: 5, arbitrary: score.map((s) => ({ kind: 'create' as const, score: s })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'compact' as const }) },
  );

  it('every user after every step of random creations and compactions, to 12 significant digits', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async (steps) => {
        await Promise.all([reset(eagerDb.sql), reset(deferredDb.sql)]);
        const magnitude: number[] = [];
        let created = 0;
        for (const s of steps) {
          if (s.kind === 'compact') {
            const result = await compactScores(deferredDb.sql);
            expect(result.outcome).not.toBe('busy');
          } else {
            const name = `u${++created}`;
            const [e, d] = await Promise.all([create(eager, name, s.score), create(deferred, name, s.score)]);
            expect(d.scoreFanout).toBe('deferred');
            expect(e.scoreFanout).toBeUndefined();
            expect({ ...d, scoreFanout: undefined, created: undefined }).toEqual({
              ...e,
              scoreFanout: undefined,
              created: undefined,
            });
            addCreation(magnitude, s.score);
          }
          const [e, d] = await Promise.all([allUsers(eager.app), allUsers(deferred.app)]);
          expectSameScores(d, e, (_, i) => magnitude[i]!, `after ${JSON.stringify(s)}`);
        }
      }),
      { numRuns: 25 },
    );
  }, 240_000);

  it('at 100,000 users, before and after a compaction; GET /users/:id agrees with the listing', async () => {
    await Promise.all([reset(eagerDb.sql), reset(deferredDb.sql)]);
    await Promise.all([seed(eagerDb.sql, 100_000), seed(deferredDb.sql, 100_000)]);
    const initial = (
      await eagerDb.sql<{ score: string }[]>`select score::text as score from users.users order by id`
    ).map((r) => Number(r.score));
    const magnitude = initial.map(Math.abs);
    for (const [i, s] of [3, 0, 1e6, -2.5, 0.125].entries()) {
      await create(eager, `late${i}`, s);
      await create(deferred, `late${i}`, s);
      addCreation(magnitude, s);
    }
    expect((await scoreLogStatus(deferredDb.sql)).lag).toBe(5);
    const truth = await allUsers(eager.app);
    expect(truth).toHaveLength(100_005);
    expectSameScores(await allUsers(deferred.app), truth, (_, i) => magnitude[i]!, 'before compaction');

    const result = await compactScores(deferredDb.sql, { batchSize: 7_000 });
    expect(result).toMatchObject({ outcome: 'compacted', target: 5, moved: 100_004, trimmed: 5, batches: 15 });
    expect(await scoreLogStatus(deferredDb.sql)).toMatchObject({ lag: 0, head: 5, oldest: 5 });
    expectSameScores(await allUsers(deferred.app), truth, (_, i) => magnitude[i]!, 'after compaction');
    for (const id of [1, 50_000, 100_004]) {
      const one = await deferred.app.inject({ url: `/users/${id}` });
      expect(one.json().score).toBeCloseTo(truth[id - 1]!.score, 6);
    }
    expect(await compactScores(deferredDb.sql)).toEqual({ outcome: 'nothing pending', target: 5 });
  }, 240_000);
});

describe('switching SCORE_MODE on an existing database', () => {
  let db: TestDatabase;
  let replayDb: TestDatabase;

  beforeAll(async () => {
    [db, replayDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  });

  afterAll(async () => {
    await db?.drop();
    await replayDb?.drop();
  });

  it('sync -> deferred needs nothing; deferred -> sync folds the log in at start; the scores are the eager ones', async () => {
    const plan: Array<{ mode: 'sync' | 'deferred'; scores: number[] }> = [
      { mode: 'sync', scores: [1, 2, 3, 4] },
      { mode: 'deferred', scores: [5, 0, 7, 8] },
      { mode: 'sync', scores: [9, 10, 11] },
      { mode: 'deferred', scores: [12, 13] },
    ];
    const magnitude: number[] = [];
    let n = 0;
    for (const phase of plan) {
      const app = await startTestApp(db, phase.mode === 'sync' ? { scoreMode: 'sync' } : deferredOptions);
      try {
        // An eager start found the log folded in: nothing pending, the stored scores current.
        if (phase.mode === 'sync') expect((await scoreLogStatus(db.sql)).lag).toBe(0);
        for (const s of phase.scores) {
          await create(app, `m${++n}`, s);
          addCreation(magnitude, s);
        }
      } finally {
        await app.close();
      }
    }
    expect((await scoreLogStatus(db.sql)).lag, 'the last deferred phase left its two creations logged').toBe(2);
    const replay = await startTestApp(replayDb, { scoreMode: 'sync' });
    const reader = await startTestApp(db, deferredOptions);
    try {
      for (const [i, s] of plan.flatMap((p) => p.scores).entries()) await create(replay, `m${i + 1}`, s);
      expectSameScores(await allUsers(reader.app), await allUsers(replay.app), (_, i) => magnitude[i]!);
    } finally {
      await reader.close();
      await replay.close();
    }
  }, 60_000);
});

describe('async fan-outs still pending when SCORE_MODE=deferred starts', () => {
  let db: TestDatabase;
  let replayDb: TestDatabase;

  beforeAll(async () => {
    [db, replayDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  });

  afterAll(async () => {
    await db?.drop();
    await replayDb?.drop();
  });

  it('are applied by the deferred process first; compaction waits for them; the scores are the eager ones', async () => {
    // An async API process whose fan-outs nobody consumes yet (no worker runs).
    const api = await startTestApp(db, { scoreMode: 'async', role: 'api' });
    const scores = [4, 1, 0, 2.5, 8, 3];
    try {
      for (const [i, s] of scores.slice(0, 4).entries())
        expect((await create(api, `p${i}`, s)).scoreFanout).toBe('pending');
    } finally {
      await api.close();
    }
    expect((await scoreLogStatus(db.sql)).pendingFanouts).toBe(3);
    const deferred = await startTestApp(db, deferredOptions);
    const replay = await startTestApp(replayDb, { scoreMode: 'sync' });
    try {
      for (const [i, s] of scores.slice(4).entries()) await create(deferred, `p${i + 4}`, s);
      await expect.poll(async () => (await scoreLogStatus(db.sql)).pendingFanouts, { timeout: 30_000 }).toBe(0);
      const magnitude: number[] = [];
      for (const [i, s] of scores.entries()) {
        await create(replay, `p${i}`, s);
        addCreation(magnitude, s);
      }
      const truth = await allUsers(replay.app);
      expectSameScores(await allUsers(deferred.app), truth, (_, i) => magnitude[i]!, 'fan-outs applied');
      expect(await compactScores(db.sql)).toMatchObject({ outcome: 'compacted', target: 2 });
      expectSameScores(await allUsers(deferred.app), truth, (_, i) => magnitude[i]!, 'compacted');
    } finally {
      await deferred.close();
      await replay.close();
    }
  }, 60_000);

  it('a compaction with async fan-outs pending says so and changes nothing', async () => {
    const api = await startTestApp(db, { scoreMode: 'async', role: 'api' });
    try {
      await create(api, 'q1', 1);
    } finally {
      await api.close();
    }
    const deferredApi = await startTestApp(db, { ...deferredOptions, role: 'api' });
    try {
      await create(deferredApi, 'q2', 1);
      const before = await allUsers(deferredApi.app);
      expect(await compactScores(db.sql)).toEqual({
        outcome: 'busy',
        reason: '1 SCORE_MODE=async fan-outs are still to be applied; they precede the logged creations',
      });
      expect(await allUsers(deferredApi.app)).toEqual(before);
      // An eager start cannot order them: it refuses, saying what to do.
      await expect(startTestApp(db, { scoreMode: 'sync', role: 'api' })).rejects.toThrow(
        /1 async fan-outs are still pending before them: run with SCORE_MODE=deferred/,
      );
    } finally {
      await deferredApi.close();
    }
  }, 60_000);
});

describe('operating the score log', () => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await startTestApp(db, deferredOptions);
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('/metrics, the dashboard and `stratum users status|compact` show the log and its lag', async () => {
    for (let i = 0; i < 4; i++) await create(app, `op${i}`, i);
    const metrics = (await app.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/^stratum_users_score_log_length 3$/m);
    expect(metrics).toMatch(/^stratum_users_score_compaction_lag_seconds \d/m);
    const samples = await app.app.inject({ url: '/dashboard/api/samples?after=0' });
    expect(samples.statusCode).toBe(200);
    expect(samples.body).toMatch(/"users":\{"scoreMode":"deferred","scoreLogLength":3,/);

    const env = { DATABASE_URL: db.url, LOG_LEVEL: 'silent' };
    const status = await runStratum(['users', 'status'], env);
    expect(status.stdout, status.stderr).toMatch(/score log: 3 creations pending \(head 3, compacted through 0\)/);
    const compact = await runStratum(['users', 'compact'], env);
    expect(compact.code, compact.stderr).toBe(0);
    expect(compact.stdout).toMatch(/compacted through log index 3: 3 users moved in 1 batches, 3 log rows trimmed/);
    expect(compact.stdout).toMatch(/score log: 0 creations pending/);
    const again = await runStratum(['users', 'compact'], env);
    expect(again.stdout).toMatch(/nothing to compact/);
    expect((await app.app.inject({ url: '/metrics' })).body).toMatch(/^stratum_users_score_log_length 0$/m);
    // A worker compacts in the background, on its own pool.
    const worker = await startTestApp(db, { scoreMode: 'deferred', scoreCompactionIntervalMs: 100, role: 'worker' });
    try {
      await create(app, 'op-late', 1);
      expect((await scoreLogStatus(db.sql)).lag).toBe(1);
      await expect.poll(async () => (await scoreLogStatus(db.sql)).lag, { timeout: 10_000 }).toBe(0);
    } finally {
      await worker.close();
    }
    const bad = await runStratum(['users', 'fold'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/usage: stratum users compact/);
  }, 60_000);
});

describe('a compaction killed mid-run', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('leaves every read equal to the truth, and the next run finishes', async () => {
    await seed(db.sql, 40_000);
    const app = await startTestApp(db, deferredOptions);
    try {
      for (let i = 0; i < 3; i++) await create(app, `k${i}`, i);
      const truth = await allUsers(app.app);
      const magnitude = (u: ScoredUser) => Math.abs(u.score) + 1;

      // A real process, SIGKILLed once some batches committed and before the last did.
      const child = spawn(process.execPath, [path.resolve('bin/stratum.js'), 'users', 'compact', '--batch', '40'], {
        env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('close', (_code, signal) => resolve(signal)),
      );
      let moved = 0;
      const deadline = Date.now() + 30_000;
      while (moved === 0 && Date.now() < deadline) {
        moved = (
          await db.sql<{ n: number }[]>`select count(*)::int as n from users.users where score_base = 3 and id < 40003`
        )[0]!.n;
        if (moved === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const after = (
        await db.sql<{ n: number }[]>`select count(*)::int as n from users.users where score_base = 3 and id < 40003`
      )[0]!.n;
      expect(after, 'killed mid-run').toBeGreaterThan(0);
      expect(after, 'killed mid-run').toBeLessThan(40_002);
      expect((await scoreLogStatus(db.sql)).lag, 'the log is trimmed only at the end').toBe(3);
      expectSameScores(await allUsers(app.app), truth, magnitude, 'after the kill');

      // The killed session's compaction lock ("users.cp") goes with its connection.
      await expect
        .poll(
          async () =>
            (
              await db.sql`
                select 1 from pg_locks where locktype = 'advisory' and classid = 1970496882 and objid = 1932419952
                  and database = (select oid from pg_database where datname = current_database())`
            ).length,
          { timeout: 10_000 },
        )
        .toBe(0);
      const next = await compactScores(db.sql);
      expect(next).toMatchObject({ outcome: 'compacted', target: 3, trimmed: 3 });
      expect(next.outcome === 'compacted' && next.moved).toBe(40_002 - after);
      expect((await scoreLogStatus(db.sql)).lag).toBe(0);
      expectSameScores(await allUsers(app.app), truth, magnitude, 'after the next run');
    } finally {
      await app.close();
    }
  }, 120_000);
});
