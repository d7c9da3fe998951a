import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactScores } from '../../src/contexts/users/deferred-scores.ts';
import { SCORE_FANOUT_GROUP } from '../../src/contexts/users/module.ts';
import { listUsersAfter } from '../../src/contexts/users/users-repository.ts';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { allUsers, SIGNIFICANT } from '../support/scores.ts';
import { burst, closeAndDrop, expectOnlyAllowed, tally } from './support.ts';

// 100 creations at once over 34 usernames (about 3 requests each), on an administrative pool of 3: every creation
// takes the same creation lock and updates every existing user (the hot rows), in both eager score modes; in
// the deferred mode every creation appends to the score log (the hot row) while compactions run throughout.
const SEEDS = ['seed0', 'seed1', 'seed2', 'seed3', 'seed4'];
const REQUESTS = Array.from({ length: 100 }, (_, i) => ({ username: `u${i % 34}`, score: (i * 7) % 11 }));

const body = (username: string, score: number) => ({
  username,
  score,
  profile: { firstname: `F_${username}`, lastname: `L_${username}` },
});

async function scores(sql: Sql): Promise<Record<string, string>> {
  const rows = await sql<
    { username: string; score: string }[]
  >`select username, score::text as score from users.users order by id`;
  return Object.fromEntries(rows.map((r) => [r.username, r.score]));
}

/** The scores reads show in SCORE_MODE=deferred (computed from the log), as numbers. */
async function loggedScores(sql: Sql): Promise<Record<string, number>> {
  const users = await listUsersAfter(sql, 0, 500, 'logged');
  return Object.fromEntries(users.map((u) => [u.username, u.score]));
}

/** Equal to 12 significant digits (the scores here are never negative: their magnitude is the score). */
function expectClose(actual: Record<string, number>, expected: Record<string, number>): void {
  expect(Object.keys(actual)).toEqual(Object.keys(expected));
  for (const [name, score] of Object.entries(expected))
    expect(Math.abs(actual[name]! - score), `${name}: ${actual[name]} vs ${score}`).toBeLessThanOrEqual(
      SIGNIFICANT * Math.max(score, Number.MIN_VALUE),
    );
}

/** The scores the same creations give one at a time, in the given order, on a fresh database (eager fan-out). */
async function serialScores(creations: Array<{ username: string; score: number }>): Promise<Record<string, string>> {
  const db = await createTestDatabase();
  let app: TestApp | undefined;
  try {
    app = await startTestApp(db, { scoreMode: 'sync' });
    for (const c of creations) {
      const res = await app.app.inject({ method: 'POST', url: '/users', payload: body(c.username, c.score) });
      expect(res.statusCode, res.body).toBe(201);
    }
    return await scores(db.sql);
  } finally {
    await closeAndDrop(app, db);
  }
}

describe.each(['sync', 'async', 'deferred'] as const)('POST /users, 100 at once, scoreMode %s', (scoreMode) => {
  let db: TestDatabase;
  let stratum: TestApp;
  let inspect: Sql;

  beforeAll(async () => {
    db = await createTestDatabase({ poolMax: 3 });
    stratum = await startTestApp(db, { scoreMode, poolMax: 3, scoreCompactionIntervalMs: 0 });
    inspect = db.pool(2);
    for (const [i, name] of SEEDS.entries()) {
      const res = await stratum.app.inject({ method: 'POST', url: '/users', payload: body(name, i) });
      expect(res.statusCode, res.body).toBe(201);
    }
  });

  afterAll(async () => {
    await closeAndDrop(stratum, db);
  });

  it('gives one 201 per username, keeps exactly the acknowledged users, and the scores of a serial replay', async () => {
    // Deferred: compactions, on a pool of their own, one after another for as long as the creations run.
    const compactor = db.pool(1);
    let bursting = true;
    let compactions = 0;
    const compacting = (async () => {
      while (scoreMode === 'deferred' && bursting) {
        if ((await compactScores(compactor)).outcome === 'compacted') compactions++;
      }
    })();
    const answers = await burst(
      stratum.app,
      REQUESTS.map((r) => ({ method: 'POST', url: '/users', payload: body(r.username, r.score) })),
    ).finally(() => {
      bursting = false;
    });
    await compacting;
    if (scoreMode === 'deferred') expect(compactions).toBeGreaterThan(0);
    expectOnlyAllowed(answers, [201, 409]);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.code).toBe('USER.ALREADY_EXISTS');
    if (scoreMode !== 'sync')
      for (const a of answers.filter((x) => x.status === 201))
        expect(a.body.scoreFanout).toBe(scoreMode === 'async' ? 'pending' : 'deferred');

    // Per username at most one creation was acknowledged, and it is the one stored.
    const winners = new Map<string, { score: number; id: number }>();
    answers.forEach((a, i) => {
      if (a.status !== 201) return;
      const request = REQUESTS[i]!;
      expect(winners.has(request.username), `two 201 for ${request.username}`).toBe(false);
      winners.set(request.username, { score: request.score, id: a.body.id });
    });
    expect(winners.size, tally(answers)).toBeGreaterThan(0);

    const users = await inspect<{ id: number; username: string }[]>`select id, username from users.users order by id`;
    expect(
      users
        .map((u) => u.username)
        .filter((n) => !SEEDS.includes(n))
        .sort(),
    ).toEqual([...winners.keys()].sort());
    expect(new Set(users.map((u) => u.username)).size).toBe(users.length);
    for (const u of users.filter((x) => winners.has(x.username))) expect(u.id).toBe(winners.get(u.username)!.id);
    // A 409 said the username exists: it does.
    for (const [i, a] of answers.entries()) if (a.status === 409) expect(winners.has(REQUESTS[i]!.username)).toBe(true);
    const profiles = (await inspect<{ n: number }[]>`select count(*)::int as n from users.user_profile`)[0]!.n;
    expect(profiles).toBe(users.length);

    // One action per user, logged in creation (id) order.
    const actions = await inspect<{ description: string }[]>`select description from users.actions order by id`;
    expect(actions.map((a) => a.description)).toEqual(
      users.map((u) => `new user created with id ${u.id} and username ${u.username}`),
    );

    if (scoreMode === 'async') {
      // Every creation's fan-out applied exactly once before comparing.
      await expect
        .poll(
          async () =>
            (
              await inspect<{ n: number }[]>`
        select count(*)::int as n from messaging.processed_messages where consumer_group = ${SCORE_FANOUT_GROUP}`
            )[0]!.n,
          { timeout: 60_000, interval: 100 },
        )
        .toBe(users.length);
    }
    const replay = users.map((u) =>
      SEEDS.includes(u.username)
        ? { username: u.username, score: SEEDS.indexOf(u.username) }
        : { username: u.username, score: winners.get(u.username)!.score },
    );
    const serial = await serialScores(replay);
    if (scoreMode !== 'deferred') {
      expect(await scores(inspect)).toEqual(serial);
      return;
    }
    const expected = Object.fromEntries(Object.entries(serial).map(([name, score]) => [name, Number(score)]));
    expectClose(await loggedScores(inspect), expected);

    // A compaction running while clients read changes no answer.
    const res = await stratum.app.inject({ method: 'POST', url: '/users', payload: body('one_more', 2) });
    expect(res.statusCode, res.body).toBe(201);
    const before = await allUsers(stratum.app);
    const [compaction, ...reads] = await Promise.all([
      compactScores(compactor, { batchSize: 3 }),
      ...Array.from({ length: 20 }, () => allUsers(stratum.app)),
    ]);
    expect(compaction.outcome).toBe('compacted');
    for (const read of reads)
      expectClose(
        Object.fromEntries(read.map((u) => [u.username, u.score])),
        Object.fromEntries(before.map((u) => [u.username, u.score])),
      );
  });

  it('still creates a user normally afterwards', async () => {
    const res = await stratum.app.inject({ method: 'POST', url: '/users', payload: body(`after_${scoreMode}`, 1) });
    expect(res.statusCode, res.body).toBe(201);
  });
});
