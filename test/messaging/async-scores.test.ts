import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { SCORE_FANOUT_GROUP } from '../../src/contexts/users/module.ts';
import { eventuallyAsync } from './contract.ts';

let db: TestDatabase;
let first: TestApp;
let second: TestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  // Two instances, each with a relay and a score consumer: they compete for the events.
  first = await startTestApp(db, { scoreMode: 'async' });
  second = await startTestApp(db, { scoreMode: 'async' });
});

afterAll(async () => {
  await first?.close();
  await second?.close();
  await db?.drop();
});

const body = (name: string, score: number) => ({ username: name, score, profile: { firstname: 'F', lastname: 'L' } });

async function scores(sql = db.sql) {
  const rows = await sql<
    { username: string; score: string }[]
  >`select username, score::text as score from users.users order by id`;
  return Object.fromEntries(rows.map((r) => [r.username, r.score]));
}

describe('SCORE_MODE=async', () => {
  it('answers at once with scoreFanout "pending", and once drained gives exactly the scores of the synchronous mode', async () => {
    const inputs = Array.from({ length: 25 }, (_, i) => ({ name: `a${i}`, score: (i * 5) % 9 }));
    const results = await Promise.all(
      inputs.map((x, i) =>
        (i % 2 ? second : first).app.inject({ method: 'POST', url: '/users', payload: body(x.name, x.score) }),
      ),
    );
    expect(results.every((r) => r.statusCode === 201 && r.json().scoreFanout === 'pending')).toBe(true);
    await eventuallyAsync(
      () =>
        db.sql`select count(*)::int as n from messaging.processed_messages where consumer_group = ${SCORE_FANOUT_GROUP}`,
      (r) => r[0]!.n === 25,
      'all 25 fan-outs',
      60_000,
    );
    const asynchronous = await scores();

    const order = (await db.sql<{ username: string }[]>`select username from users.users order by id`).map(
      (r) => r.username,
    );
    const replayDb = await createTestDatabase();
    const replay = await startTestApp(replayDb, { scoreMode: 'sync' });
    try {
      for (const name of order) {
        const input = inputs.find((x) => x.name === name)!;
        expect(
          (await replay.app.inject({ method: 'POST', url: '/users', payload: body(input.name, input.score) }))
            .statusCode,
        ).toBe(201);
      }
      expect(asynchronous).toEqual(await scores(replayDb.sql));
    } finally {
      await replay.close();
      await replayDb.drop();
    }
  });

  it('applies a fan-out once even when its event is delivered twice', async () => {
    const before = await scores();
    const [event] =
      await db.sql`select event from messaging.log where event->>'type' = 'user.created' order by seq desc limit 1`;
    // Deliver the newest creation again, as a relay that re-sent it would.
    await db.sql`insert into messaging.log (namespace, partition, event) select namespace, partition, event from messaging.log
      where event->>'id' = ${(event!.event as { id: string }).id} limit 1`;
    await db.sql`select pg_notify('stratum_log', 'stratum')`;
    await first.app.inject({ method: 'POST', url: '/users', payload: body('marker', 0) });
    await eventuallyAsync(
      () =>
        db.sql`select count(*)::int as n from messaging.processed_messages where consumer_group = ${SCORE_FANOUT_GROUP}`,
      (r) => r[0]!.n === 26,
      'the marker creation to be applied',
      60_000,
    );
    const after = await scores();
    // Only the marker's own fan-out happened: each older user moved exactly once more, by its formula.
    const n = Object.keys(before).length;
    for (const [name, score] of Object.entries(before)) {
      const expected = (
        await db.sql`select trim_scale(1 + ${score}::numeric + ${score}::numeric / ${n}::bigint)::text as s`
      )[0]!.s;
      expect(after[name]).toBe(expected);
    }
  });
});
