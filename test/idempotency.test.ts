import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { startCommitCutProxy } from './support/commit-cut-proxy.ts';
import { createPool } from '../src/platform/db/connect.ts';

let db: TestDatabase;
let stratum: TestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  stratum = await startTestApp(db);
});
afterAll(async () => {
  await stratum?.close();
  await db?.drop();
});

const post = (app: TestApp, url: string, payload: unknown, key?: string) =>
  app.app.inject({
    method: 'POST',
    url,
    payload: payload as never,
    headers: key === undefined ? {} : { 'idempotency-key': key },
  });

const accountsNamed = async (name: string) =>
  (await db.sql<{ n: number }[]>`select count(*)::int as n from accounts.accounts where name = ${name}`)[0]!.n;

describe('Idempotency-Key on creations', () => {
  it('POST /accounts: the same key and body answers the stored response once more, with Idempotent-Replayed', async () => {
    const first = await post(stratum, '/accounts', { name: 'Idem_A' }, 'key-a');
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await post(stratum, '/accounts', { name: 'Idem_A' }, 'key-a');
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await accountsNamed('Idem_A')).toBe(1);
  });

  it('the same key with another body is 422 IDEMPOTENCY.KEY_REUSED and changes nothing', async () => {
    expect((await post(stratum, '/accounts', { name: 'Idem_B' }, 'key-b')).statusCode).toBe(201);
    const reused = await post(stratum, '/accounts', { name: 'Idem_B2' }, 'key-b');
    expect(reused.statusCode).toBe(422);
    expect(reused.json().code).toBe('IDEMPOTENCY.KEY_REUSED');
    expect(await accountsNamed('Idem_B2')).toBe(0);
  });

  it('concurrent requests with one key create once and all get the same answer', async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => post(stratum, '/accounts', { name: 'Idem_C' }, 'key-c')),
    );
    expect(answers.map((a) => a.statusCode)).toEqual(answers.map(() => 201));
    expect(new Set(answers.map((a) => a.json().id)).size).toBe(1);
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(5);
    expect(await accountsNamed('Idem_C')).toBe(1);
  });

  it.each([['x'.repeat(201)], ['with space'], ['']])('rejects the key %j with 400 and creates nothing', async (key) => {
    const res = await post(stratum, '/accounts', { name: 'Idem_D' }, key);
    expect(res.statusCode).toBe(400);
    expect(await accountsNamed('Idem_D')).toBe(0);
  });

  it('POST /users and POST /orders replay too', async () => {
    const user = await post(
      stratum,
      '/users',
      { username: 'idem_user', profile: { firstname: 'Ida', lastname: 'Em' } },
      'u-1',
    );
    expect(user.statusCode).toBe(201);
    const userAgain = await post(
      stratum,
      '/users',
      { username: 'idem_user', profile: { firstname: 'Ida', lastname: 'Em' } },
      'u-1',
    );
    expect(userAgain.headers['idempotent-replayed']).toBe('true');
    expect(userAgain.json()).toEqual(user.json());

    const body = { customerId: 4242, items: [{ productId: 1, quantity: 1, price: '2.00' }] };
    const order = await post(stratum, '/orders', body, 'o-1');
    expect(order.statusCode).toBe(201);
    const orderAgain = await post(stratum, '/orders', body, 'o-1');
    expect(orderAgain.headers['idempotent-replayed']).toBe('true');
    expect(orderAgain.json()).toEqual(order.json());
    const listed = (await stratum.app.inject({ method: 'GET', url: '/orders?customerId=4242' })).json();
    expect(listed.items).toHaveLength(1);
    // Order keys live with the customer's orders (on the customer's shard): another body for that customer is refused.
    expect(
      (await post(stratum, '/orders', { ...body, items: [{ productId: 2, quantity: 1, price: '2.00' }] }, 'o-1'))
        .statusCode,
    ).toBe(422);
  });
});

describe('a commit whose outcome is unknown (the connection breaks after COMMIT was sent)', () => {
  it.each([
    ['the server committed', 'deliver'],
    ['the server never got the COMMIT', 'drop'],
  ] as const)('%s: the server settles it by the key and answers 201 once, with one account', async (_name, mode) => {
    const proxy = await startCommitCutProxy(db.url);
    const viaProxy = createPool({ url: proxy.url }, { max: 4, applicationName: db.applicationName });
    const app = await startTestApp({ ...db, url: proxy.url, sql: viaProxy }, {});
    try {
      const name = `Idem_unknown_${mode}`;
      proxy.arm(mode, /account\.created/);
      const res = await post(app, '/accounts', { name }, `unknown-${mode}`);
      expect(proxy.cuts()).toBe(1);
      expect(res.statusCode).toBe(201);
      expect(res.json().name).toBe(name);
      expect(await accountsNamed(name)).toBe(1);
      // Without a key the same cut is reported, never guessed.
      proxy.arm(mode, /account\.created/);
      const blind = await post(app, '/accounts', { name: `${name}_nokey` });
      expect(blind.statusCode).toBe(503);
      expect(blind.json().code).toBe('DB.UNAVAILABLE');
      expect(proxy.cuts()).toBe(2);
    } finally {
      await app.close();
      await viaProxy.end({ timeout: 1 });
      await proxy.close();
    }
  });
});
