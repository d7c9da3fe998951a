import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';

let db: TestDatabase;
let open: TestApp;
let guarded: TestApp;
const TOKEN = 'a-long-admin-token-for-tests';

beforeAll(async () => {
  db = await createTestDatabase();
  open = await startTestApp(db, { role: 'api' });
  guarded = await startTestApp(db, { role: 'api', adminToken: TOKEN });
  await db.sql`insert into messaging.dead_letters (id, namespace, group_name, partition, event, error, attempts)
    values ('11111111-1111-4111-8111-111111111111', 'stratum', 'billing', 0, ${db.sql.json({ id: 'e1', type: 't', key: 'k', payload: {}, headers: {}, createdAt: new Date().toISOString() })}, 'boom', 5)`;
});

afterAll(async () => {
  await open?.close();
  await guarded?.close();
  await db?.drop();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

describe('/admin/dlq', () => {
  it('does not exist without ADMIN_TOKEN', async () => {
    const res = await open.app.inject({ method: 'GET', url: '/admin/dlq?group=billing', headers: auth(TOKEN) });
    expect(res.statusCode).toBe(404);
  });

  it('answers 401 to a missing or wrong token', async () => {
    expect((await guarded.app.inject({ method: 'GET', url: '/admin/dlq?group=billing' })).statusCode).toBe(401);
    const wrong = await guarded.app.inject({ method: 'GET', url: '/admin/dlq?group=billing', headers: auth('nope') });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().code).toBe('AUTH.UNAUTHORIZED');
  });

  it('lists, shows, replays and drops dead letters with the token', async () => {
    const list = await guarded.app.inject({ method: 'GET', url: '/admin/dlq?group=billing', headers: auth(TOKEN) });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toMatchObject([
      { id: '11111111-1111-4111-8111-111111111111', group: 'billing', error: 'boom', attempts: 5 },
    ]);
    const one = await guarded.app.inject({
      method: 'GET',
      url: '/admin/dlq/billing/11111111-1111-4111-8111-111111111111',
      headers: auth(TOKEN),
    });
    expect(one.json()).toMatchObject({ event: { id: 'e1' } });
    const replay = await guarded.app.inject({
      method: 'POST',
      url: '/admin/dlq/billing/11111111-1111-4111-8111-111111111111/replay',
      headers: auth(TOKEN),
    });
    expect(replay.statusCode).toBe(200);
    const [logged] = await db.sql`select target_group, event->>'id' as id from messaging.log order by seq desc limit 1`;
    expect(logged).toEqual({ target_group: 'billing', id: 'e1' });
    expect(
      (await guarded.app.inject({ method: 'GET', url: '/admin/dlq?group=billing', headers: auth(TOKEN) })).json(),
    ).toEqual([]);
    const again = await guarded.app.inject({
      method: 'DELETE',
      url: '/admin/dlq/billing/11111111-1111-4111-8111-111111111111',
      headers: auth(TOKEN),
    });
    expect(again.statusCode).toBe(404);
    expect((await guarded.app.inject({ method: 'GET', url: '/admin/dlq', headers: auth(TOKEN) })).statusCode).toBe(400);
  });
});
