import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCORE_FANOUT_GROUP } from '../../src/contexts/users/module.ts';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { burst, closeAndDrop, expectOnlyAllowed, tally } from './support.ts';

// 60 creations at once over 20 usernames (3 requests each), on an administrative pool of 3: every creation
// takes the same creation lock and updates every existing user (the hot rows), in both score modes.
const SEEDS = ['seed0', 'seed1', 'seed2', 'seed3', 'seed4'];
const REQUESTS = Array.from({ length: 60 }, (_, i) => ({ username: `u${i % 20}`, score: (i * 7) % 11 }));

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

describe.each(['sync', 'async'] as const)('POST /users, 60 at once, scoreMode %s', (scoreMode) => {
  let db: TestDatabase;
  let stratum: TestApp;
  let inspect: Sql;

  beforeAll(async () => {
    db = await createTestDatabase({ poolMax: 3 });
    stratum = await startTestApp(db, { scoreMode, poolMax: 3 });
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
    const answers = await burst(
      stratum.app,
      REQUESTS.map((r) => ({ method: 'POST', url: '/users', payload: body(r.username, r.score) })),
    );
    expectOnlyAllowed(answers, [201, 409]);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.code).toBe('USER.ALREADY_EXISTS');
    if (scoreMode === 'async')
      for (const a of answers.filter((x) => x.status === 201)) expect(a.body.scoreFanout).toBe('pending');

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
    expect(await scores(inspect)).toEqual(await serialScores(replay));
  });

  it('still creates a user normally afterwards', async () => {
    const res = await stratum.app.inject({ method: 'POST', url: '/users', payload: body(`after_${scoreMode}`, 1) });
    expect(res.statusCode, res.body).toBe(201);
  });
});
