import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import type { App } from '../src/http/app.ts';

let db: TestDatabase;
let app: App;
let testApp: TestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  testApp = await startTestApp(db, { txDeadlineMs: 1500 });
  app = testApp.app;
});

afterAll(async () => {
  await testApp?.close();
  await db?.drop();
});

function body(username: string, score?: number) {
  return {
    username,
    ...(score === undefined ? {} : { score }),
    profile: { firstname: `F_${username}`, lastname: `L_${username}` },
  };
}

async function create(username: string, score?: number) {
  return app.inject({ method: 'POST', url: '/users', payload: body(username, score) });
}

async function reset() {
  await db.sql`truncate users.user_profile, users.users, users.actions restart identity cascade`;
}

async function snapshot() {
  const users = await db.sql`select id, username, score::text as score, updated from users.users order by id`;
  const profiles = await db.sql`select user_id, firstname, lastname from users.user_profile order by user_id`;
  const actions = await db.sql`select id, description from users.actions order by id`;
  return { users: [...users], profiles: [...profiles], actions: [...actions] };
}

async function scores(sql = db.sql) {
  const rows = await sql<
    { username: string; score: string }[]
  >`select username, score::text as score from users.users order by id`;
  return Object.fromEntries(rows.map((r) => [r.username, r.score]));
}

describe('POST /users', () => {
  it('applies score = 1 + score + score / n to every other user, exactly', async () => {
    await reset();
    const a = await create('a');
    expect(a.statusCode).toBe(201);
    expect(a.json()).toMatchObject({
      username: 'a',
      score: 0,
      updated: null,
      profile: { firstname: 'F_a', lastname: 'L_a' },
    });
    expect(await scores()).toEqual({ a: '0' });

    await create('b', 4);
    // a: 1 + 0 + 0/1 = 1; b is new and keeps 4
    expect(await scores()).toEqual({ a: '1', b: '4' });

    await create('c', 10);
    // n = 2: a = 1 + 1 + 1/2 = 2.5, b = 1 + 4 + 4/2 = 7
    const s3 = await scores();
    expect(Number(s3.a)).toBe(2.5);
    expect(Number(s3.b)).toBe(7);
    expect(s3.c).toBe('10');

    await create('d', 0);
    // n = 3: a = 1 + 2.5 + 2.5/3, b = 1 + 7 + 7/3 = 10.333..., c = 1 + 10 + 10/3 = 14.333...
    const s4 = await scores();
    expect(s4.a!.startsWith('4.3333333333')).toBe(true);
    expect(s4.b!.startsWith('10.3333333333')).toBe(true);
    expect(s4.c!.startsWith('14.3333333333')).toBe(true);
    expect(s4.d).toBe('0');

    const all = await snapshot();
    expect(all.actions.map((x) => x.description)).toEqual([
      'new user created with id 1 and username a',
      'new user created with id 2 and username b',
      'new user created with id 3 and username c',
      'new user created with id 4 and username d',
    ]);
    // every user except the newest one was touched by the last creation
    expect(all.users.map((u) => u.updated !== null)).toEqual([true, true, true, false]);
  });

  it('answers a duplicate username with 409 USER.ALREADY_EXISTS and writes nothing', async () => {
    await reset();
    await create('dup');
    await create('other');
    const before = await snapshot();
    const res = await create('dup', 99);
    expect(res.statusCode).toBe(409);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({
      status: 409,
      code: 'USER.ALREADY_EXISTS',
      type: expect.any(String),
      title: expect.any(String),
      detail: expect.any(String),
    });
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ['missing username', { profile: { firstname: 'a', lastname: 'b' } }, 'username'],
    ['empty username', { username: '', profile: { firstname: 'a', lastname: 'b' } }, 'username'],
    ['101-character username', { username: 'x'.repeat(101), profile: { firstname: 'a', lastname: 'b' } }, 'username'],
    ['username of the wrong type', { username: 12, profile: { firstname: 'a', lastname: 'b' } }, 'username'],
    ['score as a string', { username: 'x', score: '5', profile: { firstname: 'a', lastname: 'b' } }, 'score'],
    ['missing profile', { username: 'x' }, 'profile'],
    ['missing lastname', { username: 'x', profile: { firstname: 'a' } }, 'lastname'],
    ['empty firstname', { username: 'x', profile: { firstname: '', lastname: 'b' } }, 'firstname'],
    ['unknown top-level field', { username: 'x', admin: true, profile: { firstname: 'a', lastname: 'b' } }, 'admin'],
    ['unknown profile field', { username: 'x', profile: { firstname: 'a', lastname: 'b', age: 3 } }, 'age'],
  ])('rejects %s with 400 REQUEST.INVALID naming the field, writing nothing', async (_name, payload, field) => {
    await reset();
    await create('existing');
    const before = await snapshot();
    const res = await app.inject({ method: 'POST', url: '/users', payload });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('REQUEST.INVALID');
    expect(res.json().detail).toContain(field);
    expect(await snapshot()).toEqual(before);
  });

  it('rejects a body that is not JSON with 400', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/users',
      payload: '{"username":',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('REQUEST.INVALID');
  });

  it('gives one 201 and one 409 to two concurrent creations of the same name', async () => {
    await reset();
    await create('seed');
    const results = await Promise.all([create('twin'), create('twin')]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    const all = await snapshot();
    expect(all.users.filter((u) => u.username === 'twin')).toHaveLength(1);
    expect(all.actions).toHaveLength(2);
    // seed was updated exactly once: 1 + 0 + 0/1
    expect((await scores()).seed).toBe('1');
  });

  it('gives 30 concurrent creations exactly the scores of a serial order', async () => {
    await reset();
    const inputs = Array.from({ length: 30 }, (_, i) => ({ name: `c${i}`, score: (i * 7) % 11 }));
    const results = await Promise.all(inputs.map((x) => create(x.name, x.score)));
    expect(results.every((r) => r.statusCode === 201)).toBe(true);
    const concurrent = await scores();

    // Replay the same creations one by one, in the order they committed (id order), on a fresh database.
    const order = (await db.sql<{ username: string }[]>`select username from users.users order by id`).map(
      (r) => r.username,
    );
    const replayDb = await createTestDatabase();
    const replay = await startTestApp(replayDb);
    try {
      for (const name of order) {
        const input = inputs.find((x) => x.name === name)!;
        const res = await replay.app.inject({ method: 'POST', url: '/users', payload: body(input.name, input.score) });
        expect(res.statusCode).toBe(201);
      }
      expect(concurrent).toEqual(await scores(replayDb.sql));
    } finally {
      await replay.close();
      await replayDb.drop();
    }
  });

  it('fails with 503 TX.DEADLINE_EXCEEDED when a user row stays locked, commits nothing, and leaves the pool whole', async () => {
    await reset();
    await create('held');
    await create('free');
    const before = await snapshot();
    const locker = db.pool(1, `${db.applicationName}-locker`);
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const holder = locker.begin(async (tx) => {
      await tx`select id from users.users where username = 'free' for update`;
      locked();
      await released;
    });
    try {
      await isLocked;
      const res = await create('blocked');
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('TX.DEADLINE_EXCEEDED');
      expect(res.headers['retry-after']).toBeDefined();
    } finally {
      release();
      await holder;
      await locker.end();
    }
    expect(await snapshot()).toEqual(before);

    // No connection of the app's pool is left inside a transaction...
    const stuck = await db.sql`select count(*)::int as n from pg_stat_activity
      where application_name = ${db.applicationName} and state like 'idle in transaction%'`;
    expect(stuck[0]!.n).toBe(0);
    // ...every connection of the pool still works, with the session's default timeouts...
    const settings = await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          db.sql`select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt, pg_sleep(0.05)`,
      ),
    );
    expect(settings.every(([s]) => s!.st === '0' && s!.lt === '0')).toBe(true);
    // ...and the same creation now succeeds.
    expect((await create('blocked')).statusCode).toBe(201);
  });
});

describe('GET /users, /users/:id, /actions', () => {
  beforeAll(async () => {
    await reset();
    for (let i = 0; i < 7; i++) await create(`p${i}`);
  });

  it('walks users in id order with keyset cursors', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res: {
        statusCode: number;
        json(): { items: { id: number; profile: unknown }[]; nextCursor: string | null };
      } = await app.inject({ method: 'GET', url: `/users?limit=3${cursor ? `&cursor=${cursor}` : ''}` });
      expect(res.statusCode).toBe(200);
      const page = res.json();
      seen.push(...page.items.map((u: { id: number }) => u.id));
      expect(page.items.every((u: { profile: unknown }) => u.profile)).toBe(true);
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('walks actions newest first', async () => {
    const first = (await app.inject({ method: 'GET', url: '/actions?limit=4' })).json();
    const second = (await app.inject({ method: 'GET', url: `/actions?limit=4&cursor=${first.nextCursor}` })).json();
    expect([...first.items, ...second.items].map((a: { id: number }) => a.id)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expect(second.nextCursor).toBeNull();
  });

  it('returns one user or 404 USER.NOT_FOUND', async () => {
    const res = await app.inject({ method: 'GET', url: '/users/2' });
    expect(res.json()).toMatchObject({ id: 2, username: 'p1', profile: { firstname: 'F_p1' } });
    const missing = await app.inject({ method: 'GET', url: '/users/999' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('USER.NOT_FOUND');
  });

  it.each([
    ['/users?limit=0'],
    ['/users?limit=501'],
    ['/users?limit=abc'],
    ['/users?cursor=not-a-cursor'],
    ['/users?cursor=eyJpZCI6LTF9'],
    ['/users/abc'],
    ['/users/0'],
    ['/users/99999999999'],
    ['/actions?limit=-1'],
    ['/users?unknown=1'],
  ])('answers %s with 400 REQUEST.INVALID', async (url) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('REQUEST.INVALID');
  });
});
