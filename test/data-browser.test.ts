import fs from 'node:fs';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openContextPools, type ContextPools } from '../src/app/context-pools.ts';
import { loadConfig } from '../src/config/config.ts';
import { seedAccountRange } from '../src/contexts/accounts/seed-accounts.ts';
import { seedImageRange } from '../src/contexts/images/seed-images.ts';
import { openOrderShards } from '../src/contexts/orders/shards.ts';
import { dataBrowserRoutes } from '../src/http/data-browser/routes.ts';
import type { DataBrowserContext } from '../src/http/data-browser/sources.ts';
import { installProblemHandlers } from '../src/http/problem.ts';
import { passwordOfUrl } from '../src/platform/db/connect.ts';
import type { ShardSet } from '../src/platform/sharding/shard-set.ts';
import { launchChromiumOrSkip, watchPage } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const TOKEN = 'data-browser-test-token';
const OUTPUT = path.resolve(import.meta.dirname, '..', 'test-output');
const BASE = '/dashboard/data-browser';

let db: TestDatabase;
let pools: ContextPools;
let shards: ShardSet;
let contexts: DataBrowserContext[];
const apps: FastifyInstance[] = [];
let order: { id: string; shard: string; items: string[] };

const decode = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
/** A fragment's text as a reader sees it: no tags, entities decoded, runs of white space as one space. */
const textOf = (fragment: string) =>
  decode(fragment.replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
/** The links of a page with a class, their target and text. */
const anchors = (body: string, cls: string) =>
  [...body.matchAll(/<a\s([^>]*)>([\s\S]*?)<\/a\s*>/g)]
    .filter((m) => new RegExp(`class="${cls}"`).test(m[1]!))
    .map((m) => ({ href: decode(/href="([^"]*)"/.exec(m[1]!)![1]!), text: textOf(m[2]!) }));
/** The row of the start page that lists `table`, as text. */
const listed = (body: string, table: string) =>
  textOf(new RegExp(`<tr\\s+data-table="${table.replace('.', '\\.')}"\\s*>([\\s\\S]*?)</tr>`).exec(body)?.[1] ?? '');

async function appWith(deps: Parameters<typeof dataBrowserRoutes>[0]): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  installProblemHandlers(app);
  dataBrowserRoutes(deps)(app);
  await app.ready();
  apps.push(app);
  return app;
}

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent', ORDERS_SHARD_COUNT: '2' }, process.cwd());
  pools = await openContextPools({
    admin: db.sql,
    target: { url: db.url },
    adminSecret: passwordOfUrl(db.url),
    passwords: config.rolePasswords,
    poolMax: 3,
    applicationName: db.applicationName,
  });
  shards = await openOrderShards(config, {
    catalog: db.sql,
    target: { url: db.url },
    applicationName: db.applicationName,
  });
  await seedAccountRange(db.sql, 0, 1000);
  await seedImageRange(db.sql, 0, 10);
  // A table without a primary key, with a name that needs quoting, in the users schema (administrative pool).
  await db.sql.unsafe(`create table users."odd ""name""; --" (n int, label text)`);
  await db.sql.unsafe(`insert into users."odd ""name""; --" select i, 'label ' || i from generate_series(1, 120) i`);

  // An order with three items on the second shard.
  const shard = shards.all()[1]!;
  const [created] = await shard.sql<{ id: string }[]>`
    insert into orders.orders (id, customer_id, bucket, status, total_amount)
    values ((nextval('orders.order_seq') * 64 + (select shard_id from shard.info)) * 1024 + orders.bucket_of(42),
            42, orders.bucket_of(42), 'pending', 60.00)
    returning id::text`;
  const items = await shard.sql<{ id: string }[]>`
    insert into orders.order_items (order_id, product_id, quantity, price)
    select ${created!.id}::bigint, p, 1, 20.00 from generate_series(1, 3) p returning id::text`;
  order = { id: created!.id, shard: `shard-${shard.id}`, items: items.map((i) => i.id) };

  contexts = [
    { name: 'accounts', schemas: ['accounts'], databases: [{ name: 'main', sql: pools.own.accounts! }] },
    { name: 'images', schemas: ['images'], databases: [{ name: 'main', sql: pools.own.images! }] },
    { name: 'users', schemas: ['users'], databases: [{ name: 'main', sql: db.sql }] },
    {
      name: 'orders',
      schemas: ['orders'],
      databases: shards.all().map((s) => ({ name: `shard-${s.id}`, sql: s.sql })),
    },
  ];
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await shards?.close();
  await pools?.end();
  await db?.drop();
});

describe('access', () => {
  it('answers 401 problem+json and nothing of a page without the token; 200 with it as a header or ?token=', async () => {
    const app = await appWith({ contexts, token: TOKEN, open: false });
    const table = `${BASE}/accounts/main/accounts/accounts`;
    for (const [url, headers] of [
      [BASE, {}],
      [table, {}],
      [`${table}/row?key=x`, {}],
      [BASE, { authorization: 'Bearer wrong' }],
      [`${BASE}?token=wrong`, {}],
      [table, { authorization: TOKEN }],
    ] as const) {
      const res = await app.inject({ url, headers });
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json().code).toBe('AUTH.UNAUTHORIZED');
      expect(res.body).not.toMatch(/<html|accounts\.accounts|Person_/);
    }
    const withHeader = await app.inject({ url: table, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(withHeader.statusCode).toBe(200);
    expect(withHeader.headers['content-type']).toMatch(/^text\/html/);
    expect(withHeader.body).not.toContain('token=');

    const withQuery = await app.inject({ url: `${table}?token=${TOKEN}` });
    expect(withQuery.statusCode).toBe(200);
    // The links keep the token, so the next page opens too.
    const next = anchors(withQuery.body, 'next')[0]!.href;
    expect(next).toContain(`token=${TOKEN}`);
    expect((await app.inject({ url: next })).statusCode).toBe(200);
    const row = `${BASE}/orders/${order.shard}/orders/orders/row?key=${order.id}`;
    expect((await app.inject({ url: row })).statusCode).toBe(401);
    const rowWithToken = await app.inject({ url: `${row}&token=${TOKEN}` });
    expect(rowWithToken.statusCode).toBe(200);
    expect(textOf(rowWithToken.body)).toContain(`orders.order_items where order_id = ${order.id} 3 rows`);
  });

  it('answers 401 to everything, whatever token is sent, when no token is configured and it is not open', async () => {
    const closed = await appWith({ contexts, token: undefined, open: false });
    const table = `${BASE}/accounts/main/accounts/accounts`;
    for (const [url, headers] of [
      [BASE, {}],
      [table, {}],
      [`${table}?after=x`, {}],
      [`${table}/row?key=x`, {}],
      [`${BASE}/nope/main/nope/nope`, {}],
      [BASE, { authorization: 'Bearer ' }],
      [BASE, { authorization: 'Bearer undefined' }],
      [`${BASE}?token=`, {}],
      [`${table}?token=${TOKEN}`, {}],
    ] as const) {
      const res = await closed.inject({ url, headers });
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json().code).toBe('AUTH.UNAUTHORIZED');
      expect(res.body).not.toMatch(/<html|accounts\.accounts|Person_/);
    }
    // An empty token is no token.
    const empty = await appWith({ contexts, token: '', open: false });
    expect((await empty.inject({ url: BASE, headers: { authorization: 'Bearer ' } })).statusCode).toBe(401);
    expect((await empty.inject({ url: `${BASE}?token=` })).statusCode).toBe(401);
  });

  it('serves everything without a token when open, and links carry no token', async () => {
    for (const token of [undefined, TOKEN]) {
      const open = await appWith({ contexts, token, open: true });
      const res = await open.inject({ url: BASE });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['content-security-policy']).toContain("default-src 'none'");
      expect(res.body).toContain('data-table="accounts.accounts"');
      const page = await open.inject({ url: `${BASE}/accounts/main/accounts/accounts?token=anything` });
      expect(page.statusCode).toBe(200);
      expect(page.body).not.toContain('token=');
      const next = await open.inject({ url: anchors(page.body, 'next')[0]!.href });
      expect(next.statusCode).toBe(200);
      expect(next.body).toContain('<table class="rows"');
      const row = await open.inject({ url: anchors(next.body, 'row-link')[0]!.href });
      expect(row.statusCode).toBe(200);
      expect(row.body).toContain('data-column="name"');
      expect(row.body).not.toContain('token=');
    }
  });
});

describe('what a context may see', () => {
  it('lists each context only in its schemas, counted exactly when small', async () => {
    const app = await appWith({ contexts, token: undefined, open: true });
    const body = (await app.inject({ url: BASE })).body;
    const section = (name: string) => body.split(`data-context="${name}"`)[1]!.split('</section>')[0]!;
    expect(listed(section('accounts'), 'accounts.accounts')).toMatch(/^accounts\.accounts 1,000 exact \d+(\.\d)? kB$/);
    expect(section('accounts')).toContain('read as role stratum_accounts');
    expect(section('accounts')).not.toContain('account_images');
    expect(section('images')).toContain('data-table="images.account_images"');
    expect(section('images')).toContain('read as role stratum_images');
    expect(section('users')).not.toMatch(/data-table="(accounts|images|orders)\./);
    // Orders: both shards, the orders schema only (not the shard's own tables).
    for (const s of shards.all()) expect(section('orders')).toContain(`data-database="shard-${s.id}"`);
    expect(section('orders')).toContain('data-table="orders.order_items"');
    expect(section('orders')).not.toMatch(/data-table="(shard|sharding|outbox|public)\./);
  });

  it('shows the planner’s estimate, said so, for a table of more than 10,000 rows', async () => {
    await db.sql`create table users.big (id int primary key)`;
    await db.sql`insert into users.big select generate_series(1, 12000)`;
    await db.sql`analyze users.big`;
    const app = await appWith({ contexts, token: undefined, open: true });
    const body = (await app.inject({ url: BASE })).body;
    expect(listed(body, 'users.big')).toMatch(/^users\.big ≈ 12,000 estimate \d/);
    await db.sql`drop table users.big`;
  });

  it('refuses a schema that is not the context’s, and shows no data of one its role may not read', async () => {
    const app = await appWith({ contexts, token: undefined, open: true });
    const wrongSchema = await app.inject({ url: `${BASE}/accounts/main/images/account_images` });
    expect(wrongSchema.statusCode).toBe(404);
    expect(wrongSchema.body).not.toContain('https://images.stratum.test');

    // Misconfigured on purpose: the accounts context given the images schema. Its role has no right there.
    const greedy = await appWith({
      contexts: [{ name: 'accounts', schemas: ['accounts', 'images'], databases: contexts[0]!.databases }],
      token: undefined,
      open: true,
    });
    const index = (await greedy.inject({ url: BASE })).body;
    expect(index).toContain('data-denied="images"');
    expect(index).not.toContain('account_images');
    const page = await greedy.inject({ url: `${BASE}/accounts/main/images/account_images` });
    expect(page.statusCode).toBe(403);
    expect(page.body).toContain('no USAGE on schema images');
    expect(page.body).not.toContain('https://images.stratum.test');
    const row = await greedy.inject({
      url: `${BASE}/accounts/main/images/account_images/row?key=${encodeURIComponent((await firstImage()).account_id)}`,
    });
    expect(row.statusCode).toBe(403);
    expect(row.body).not.toContain('https://images.stratum.test');

    // The images context itself reads it.
    const own = await app.inject({ url: `${BASE}/images/main/images/account_images` });
    expect(own.statusCode).toBe(200);
    expect(own.body).toContain('https://images.stratum.test/person/');
  });
  it('reads through the context’s own role, which cannot read another context’s tables', async () => {
    const [accountsRole] = await pools.own.accounts!<{ role: string }[]>`select current_user::text as role`;
    expect(accountsRole!.role).toBe('stratum_accounts');
    const own = await appWith({ contexts, token: undefined, open: true });
    const page = await own.inject({ url: `${BASE}/accounts/main/accounts/accounts` });
    expect(textOf(page.body)).toContain('read as role stratum_accounts');

    const image = await firstImage();
    const [account] = await db.sql<{ id: string }[]>`select id::text from accounts.accounts order by id limit 1`;
    const [user] = await db.sql<{ id: string }[]>`
      insert into users.users (username) values ('role_check_secret') returning id::text`;
    // Each context's pool given the other's schema (and users'): the database refuses the role, so the browser does.
    for (const { pool, role, schema, table, key, secret } of [
      {
        pool: 'accounts',
        role: 'stratum_accounts',
        schema: 'images',
        table: 'account_images',
        key: image.account_id,
        secret: 'https://images.stratum.test',
      },
      {
        pool: 'images',
        role: 'stratum_images',
        schema: 'accounts',
        table: 'accounts',
        key: account!.id,
        secret: 'Person_',
      },
      {
        pool: 'accounts',
        role: 'stratum_accounts',
        schema: 'users',
        table: 'users',
        key: user!.id,
        secret: 'role_check_secret',
      },
    ]) {
      const sql = pools.own[pool]!;
      await expect(sql.unsafe(`select * from ${schema}.${table} limit 1`)).rejects.toMatchObject({ code: '42501' });
      const tableUrl = `${BASE}/${pool}/main/${schema}/${table}`;
      const rowUrl = `${tableUrl}/row?key=${encodeURIComponent(key)}`;

      // The same pages read on the administrative pool show the data: only the role keeps it out below.
      const admin = await appWith({
        contexts: [{ name: pool, schemas: [schema], databases: [{ name: 'main', sql: db.sql }] }],
        token: undefined,
        open: true,
      });
      for (const url of [tableUrl, rowUrl]) {
        const res = await admin.inject({ url });
        expect(res.statusCode, `admin ${url}`).toBe(200);
        expect(res.body, `admin ${url}`).toContain(secret);
      }
      expect((await admin.inject({ url: BASE })).body).toContain(`data-table="${schema}.${table}"`);

      const app = await appWith({
        contexts: [{ name: pool, schemas: [schema], databases: [{ name: 'main', sql }] }],
        token: undefined,
        open: true,
      });
      const index = await app.inject({ url: BASE });
      expect(index.statusCode).toBe(200);
      expect(index.body, `${pool} on ${schema}`).toContain(`data-denied="${schema}"`);
      expect(textOf(index.body)).toContain(`role ${role} has no USAGE on it`);
      expect(index.body).not.toContain(`data-table="${schema}.`);
      for (const url of [tableUrl, `${tableUrl}?after=${encodeURIComponent(key)}`, rowUrl]) {
        const res = await app.inject({ url });
        expect(res.statusCode, url).toBe(403);
        expect(textOf(res.body)).toContain(`role ${role} has no USAGE on schema ${schema}`);
        expect(res.body).not.toContain(secret);
        expect(res.body).not.toContain('<table class="rows"');
      }
    }
    await db.sql`delete from users.users where id = ${user!.id}`;
  });

  it('lists a table of its own schema that its role may not SELECT from, and shows none of its rows', async () => {
    // Created by the administrative role, with no grant to stratum_accounts.
    await db.sql`create table accounts.private_notes (id int primary key, note text not null)`;
    await db.sql`insert into accounts.private_notes values (1, 'private-note-secret'), (2, 'another one')`;
    const table = `${BASE}/accounts/main/accounts/private_notes`;
    const row = `${table}/row?key=1`;

    const admin = await appWith({
      contexts: [{ name: 'accounts', schemas: ['accounts'], databases: [{ name: 'main', sql: db.sql }] }],
      token: undefined,
      open: true,
    });
    expect(listed((await admin.inject({ url: BASE })).body, 'accounts.private_notes')).toMatch(/ 2 exact /);
    for (const url of [table, row]) expect((await admin.inject({ url })).body).toContain('private-note-secret');

    const app = await appWith({ contexts, token: undefined, open: true });
    const index = (await app.inject({ url: BASE })).body;
    expect(listed(index, 'accounts.private_notes')).toMatch(/^accounts\.private_notes no SELECT right \d/);
    expect(index).not.toContain(`href="${table}"`);
    for (const url of [table, `${table}?after=1`, row]) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(403);
      expect(textOf(res.body)).toContain('role stratum_accounts may not SELECT from accounts.private_notes');
      expect(res.body).not.toMatch(/private-note-secret|another one/);
    }
    await db.sql`drop table accounts.private_notes`;
  });
});

async function firstImage() {
  const [image] = await db.sql<{ account_id: string }[]>`select account_id::text from images.account_images limit 1`;
  return image!;
}

describe('pages', () => {
  it('follows an order to its items on its shard, and an item back to its order', async () => {
    const app = await appWith({ contexts, token: undefined, open: true });
    const rowUrl = `${BASE}/orders/${order.shard}/orders/orders/row?key=${order.id}`;
    const row = await app.inject({ url: rowUrl });
    expect(row.statusCode).toBe(200);
    expect(textOf(row.body)).toContain(`on shard ${order.shard} of context orders`);
    expect(textOf(row.body)).toContain(`orders.order_items where order_id = ${order.id} 3 rows on this shard`);
    const items = anchors(row.body, 'referencing');
    expect(items.map((a) => a.text)).toEqual([`orders.order_items where order_id = ${order.id}`]);
    const list = await app.inject({ url: items[0]!.href });
    expect(list.statusCode).toBe(200);
    const keys = [...list.body.matchAll(/<tr\s+data-key="([^"]+)"/g)].map((m) => m[1]);
    expect(keys).toEqual(order.items);
    expect(textOf(list.body)).toContain('end of table');
    expect(anchors(list.body, 'next')).toEqual([]);
    // The order does not exist on the other shard.
    const other = shards.all().find((s) => `shard-${s.id}` !== order.shard)!;
    expect(
      (await app.inject({ url: `${BASE}/orders/shard-${other.id}/orders/orders/row?key=${order.id}` })).statusCode,
    ).toBe(404);

    const item = await app.inject({
      url: `${BASE}/orders/${order.shard}/orders/order_items/row?key=${order.items[0]}`,
    });
    const back = anchors(item.body, 'referenced');
    expect(back).toEqual([{ href: rowUrl, text: `orders.orders (id) = ${order.id}` }]);
  });

  /** Follows the "next" links from `url`; each page's rows as their cells' text. */
  async function pageThrough(app: FastifyInstance, url: string | undefined) {
    const rows: string[][] = [];
    let pages = 0;
    while (url) {
      const res = await app.inject({ url });
      expect(res.statusCode).toBe(200);
      pages++;
      for (const [, tr] of res.body.matchAll(/<tr\s+data-key="[^"]*"\s*>([\s\S]*?)<\/tr>/g))
        rows.push([...tr!.matchAll(/<td\s+class="cell"\s*>([\s\S]*?)<\/td>/g)].map((m) => textOf(m[1]!)));
      url = anchors(res.body, 'next')[0]?.href;
    }
    return { rows, pages };
  }

  it('pages a table without a primary key by ctid, its quoted name intact', async () => {
    const app = await appWith({ contexts, token: undefined, open: true });
    const first = await app.inject({ url: `${BASE}/users/main/users/${encodeURIComponent('odd "name"; --')}` });
    expect(textOf(first.body)).toContain('paged by ctid');
    const { rows, pages } = await pageThrough(app, `${BASE}/users/main/users/${encodeURIComponent('odd "name"; --')}`);
    expect(pages).toBe(3);
    expect(rows.map((r) => r[0])).toEqual(Array.from({ length: 120 }, (_, i) => String(i + 1)));
  });

  it('orders a numeric key as a number (not as its text) from page to page', async () => {
    await db.sql`insert into users.users (username) select 'browse_' || i from generate_series(1, 120) i`;
    const expected = await db.sql<{ id: string }[]>`select u.id::text from users.users u order by u.id`;
    const ids = expected.map((e) => e.id);
    expect(ids).toHaveLength(120);
    // Sorted as text (1, 10, 100, 101, …) the pages would differ: the check below can fail.
    expect([...ids].sort()).not.toEqual(ids);
    const app = await appWith({ contexts, token: undefined, open: true });
    const { rows, pages } = await pageThrough(app, `${BASE}/users/main/users/users`);
    expect(pages).toBe(3);
    expect(rows.map((r) => r[0])).toEqual(ids);
  });

  it('pages a bigint key with negative and 19-digit values, and a numeric one with decimals, in number order', async () => {
    await db.sql`create table users.ledger (id bigint primary key, amount numeric(20, 4) not null unique)`;
    // 130 keys from -9.2e18 to 9.2e18, and amounts whose text order is not their number order.
    await db.sql`
      insert into users.ledger
      select (i - 65) * 141851990232189440 + i, (i - 65) * 10.5 + 0.0001 * i from generate_series(0, 129) i`;
    const byId = await db.sql<
      { id: string; amount: string }[]
    >`select l.id::text, l.amount::text from users.ledger l order by l.id`;
    expect(byId[0]!.id).toMatch(/^-9\d{18}$/);
    expect([...byId.map((r) => r.id)].sort()).not.toEqual(byId.map((r) => r.id));
    const app = await appWith({ contexts, token: undefined, open: true });
    const { rows, pages } = await pageThrough(app, `${BASE}/users/main/users/ledger`);
    expect(pages).toBe(3);
    expect(rows).toEqual(byId.map((r) => [r.id, r.amount]));

    // The same table paged by its numeric column, through the key a next link carries.
    await db.sql`create table users.amounts (amount numeric primary key)`;
    await db.sql`insert into users.amounts select amount from users.ledger`;
    const byAmount = await db.sql<{ amount: string }[]>`select a.amount::text from users.amounts a order by a.amount`;
    const amounts = await pageThrough(app, `${BASE}/users/main/users/amounts`);
    expect(amounts.pages).toBe(3);
    expect(amounts.rows.map((r) => r[0])).toEqual(byAmount.map((r) => r.amount));
    await db.sql`drop table users.ledger, users.amounts`;
  });

  it('answers bad input with a clear 4xx and changes nothing', async () => {
    const app = await appWith({ contexts, token: undefined, open: true });
    const shard = shards.all().find((s) => `shard-${s.id}` === order.shard)!;
    const state = () => shard.sql<{ orders: number; items: number }[]>`
      select (select count(*)::int from orders.orders) as orders, (select count(*)::int from orders.order_items) as items`;
    const before = await state();
    expect(before[0]!.orders).toBeGreaterThan(0);
    // A key of two columns, and a column of a type without `=`.
    await db.sql`create table users.pairs (a int, b int, primary key (a, b))`;
    await db.sql`create table users.docs (id int primary key, doc json)`;
    const table = `${BASE}/orders/${order.shard}/orders/orders`;
    const q = encodeURIComponent;
    for (const [url, status, says] of [
      [`${table}?after=not-a-number`, 400, 'invalid input syntax for type bigint'],
      [`${table}?after=${q('0) or true; delete from orders.orders; --')}`, 400, 'invalid input syntax for type bigint'],
      [`${table}?col=id&eq=${q('1; delete from orders.order_items')}`, 400, 'invalid input syntax for type bigint'],
      [`${table}?col=nope&eq=1`, 404, 'no column nope in orders.orders'],
      [`${table}?col=${q('id = id; drop table orders.orders; --')}&eq=1`, 404, 'no column id = id'],
      [`${table}?col=id`, 400, 'give col and eq together'],
      [`${table}/row?key=${q('1 or 1=1')}`, 400, 'invalid input syntax for type bigint'],
      [`${BASE}/orders/${order.shard}/orders/${q('orders; drop table orders.orders')}`, 404, 'no table orders.orders;'],
      [`${BASE}/users/main/users/pairs/row?key=1`, 400, 'a key of this table is a JSON array of 2 strings'],
      [`${BASE}/users/main/users/pairs?after=${q('["1"]')}`, 400, 'a key of this table is a JSON array of 2 strings'],
      [`${BASE}/users/main/users/docs?col=doc&eq=${q('{}')}`, 400, 'operator does not exist: json ='],
    ] as const) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(status);
      expect(res.headers['content-type'], url).toMatch(/^text\/html/);
      expect(textOf(res.body), url).toContain(says);
      expect(res.body, url).not.toContain('<table class="rows"');
    }
    // A route's own validation (a key longer than any key).
    const long = await app.inject({ url: `${table}/row?key=${'9'.repeat(5000)}` });
    expect(long.statusCode).toBe(400);
    expect(await state()).toEqual(before);
    await db.sql`drop table users.pairs, users.docs`;
  });
});

describe('in a browser', () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  /** The rows of the table page shown: each row's key, and its cells' text. */
  const shownRows = (page: Page) =>
    page.locator('table.rows tbody tr').evaluateAll((trs) =>
      trs.map((tr) => ({
        key: tr.getAttribute('data-key') ?? '',
        cells: [...tr.querySelectorAll('td.cell')].map((td) => td.textContent ?? ''),
      })),
    );

  it('pages through 1,000 accounts in key order, opens a row, follows an order to its items on its shard', async (ctx) => {
    const app = await appWith({ contexts, token: TOKEN, open: false });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    browser = await launchChromiumOrSkip(ctx);
    fs.mkdirSync(OUTPUT, { recursive: true });
    const shots: string[] = [];
    const shot = (page: Page, name: string) => {
      const file = path.join(OUTPUT, `data-browser-${name}.png`);
      fs.rmSync(file, { force: true });
      shots.push(file);
      return page.screenshot({ path: file, fullPage: true });
    };

    // Without the token the browser gets the problem, not the page.
    const stranger = watchPage(await browser.newPage());
    const refused = await stranger.page.goto(`${address}${BASE}`);
    expect(refused!.status()).toBe(401);
    expect(refused!.headers()['content-type']).toMatch(/^application\/problem\+json/);
    expect(await stranger.page.locator('table, a').count()).toBe(0);
    await stranger.page.close();

    const { page, errors, requests } = watchPage(
      await browser.newPage({
        viewport: { width: 1400, height: 1000 },
        extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` },
      }),
    );

    await page.goto(`${address}${BASE}`);
    await shot(page, 'index');
    await page.locator('[data-context="accounts"] [data-table="accounts.accounts"] a').click();
    const expected = await db.sql<{ id: string; cells: string[] }[]>`
      select a.id::text, array[a.id::text, a.name::text, a.created::text, coalesce(a.updated::text, 'null')] as cells
        from accounts.accounts a order by a.id`;
    expect(expected).toHaveLength(1000);
    const columns = await db.sql<{ name: string }[]>`
      select attname::text as name from pg_attribute
       where attrelid = 'accounts.accounts'::regclass and attnum > 0 and not attisdropped order by attnum`;
    expect(columns.map((c) => c.name)).toEqual(['id', 'name', 'created', 'updated']);

    const shown: string[][] = [];
    let pages = 0;
    for (;;) {
      pages++;
      const want = expected.slice((pages - 1) * 50, pages * 50);
      const rows = await shownRows(page);
      expect(rows.length, `page ${pages}`).toBe(50);
      // Every row of this page as the database has it, in key order, and the link to open it carries its key.
      expect(
        rows.map((r) => r.cells),
        `page ${pages}`,
      ).toEqual(want.map((w) => w.cells));
      expect(rows.map((r) => r.key)).toEqual(want.map((w) => w.id));
      shown.push(...rows.map((r) => r.cells));
      // The page's own query and its plan: by the primary key's index, after the previous page's last key.
      const query = (await page.locator('pre.query').textContent()) ?? '';
      const plan = (await page.locator('pre.plan').textContent()) ?? '';
      expect(query).not.toMatch(/offset/i);
      expect(query).toMatch(/order by r\."id"\s+limit 51/);
      // The planner picks an index scan or a top-N sort by its statistics; either way it is the plan of this query.
      expect(plan).toMatch(/^Limit/);
      expect(plan).toMatch(/ on accounts r/);
      if (pages === 1) {
        expect(query).not.toMatch(/where/);
        expect(await page.locator('p.params').count()).toBe(0);
        expect(plan).not.toMatch(/Index Cond|Filter/);
        expect(await page.locator('table.indexes').textContent()).toContain(
          'CREATE UNIQUE INDEX accounts_pkey ON accounts.accounts USING btree (id)',
        );
        await shot(page, 'table');
      } else {
        const previous = expected[(pages - 1) * 50 - 1]!.id;
        expect(query).toMatch(/where \(r\."id"\) > \(\$1\)/);
        await expect(page.locator('p.params').first().textContent()).resolves.toContain(`$1 = ${previous}`);
        expect(plan).toMatch(new RegExp(`(Index Cond|Filter): \\(id > '${previous}'::uuid\\)`));
      }
      const next = page.locator('a.next');
      if ((await next.count()) === 0) break;
      await Promise.all([page.waitForURL((u) => u.searchParams.has('after')), next.first().click()]);
    }
    expect(pages).toBe(20);
    expect(shown).toEqual(expected.map((e) => e.cells));
    await expect(page.locator('.end').first().textContent()).resolves.toBe('end of table');

    // Open a row from the last page: every column as the database has it.
    const last = expected[999]!;
    expect(await page.locator(`tr[data-key="${last.id}"]`).count()).toBe(1);
    await page.locator(`tr[data-key="${last.id}"] a.row-link`).click();
    await page.waitForURL((u) => u.pathname.endsWith('/row'));
    const [account] = await db.sql<
      Record<string, string | null>[]
    >`select id::text, name::text, created::text, updated::text from accounts.accounts where id = ${last.id}`;
    const values = await page
      .locator('table.row tbody tr')
      .evaluateAll((trs) =>
        Object.fromEntries(
          trs.map((tr) => [tr.getAttribute('data-column'), tr.querySelector('td.cell')?.textContent ?? '']),
        ),
      );
    expect(values).toEqual({ ...account, updated: account!.updated ?? 'null' });
    await shot(page, 'row');

    // The order: from the start page, its shard's orders table, its row, its items, an item back to it.
    await page.goto(`${address}${BASE}`);
    await page
      .locator(`[data-context="orders"] [data-database="${order.shard}"] [data-table="orders.orders"] a`)
      .click();
    await page.locator(`tr[data-key="${order.id}"] a.row-link`).click();
    await page.waitForURL((u) => u.pathname.endsWith('/row'));
    await expect(page.locator('.database-name').textContent()).resolves.toBe(order.shard);
    await expect(page.locator('p.where').textContent()).resolves.toMatch(
      new RegExp(`on shard\\s+${order.shard}\\s+of context orders`),
    );
    await shot(page, 'order');
    await page.locator('a.referencing').click();
    await page.waitForURL((u) => u.searchParams.get('col') === 'order_id');
    expect(new URL(page.url()).pathname).toBe(`${BASE}/orders/${order.shard}/orders/order_items`);
    const items = await shownRows(page);
    expect(items.map((r) => r.key)).toEqual(order.items);
    const onShard = await shards.all().find((s) => `shard-${s.id}` === order.shard)!.sql<{ order_id: string }[]>`
      select order_id::text from orders.order_items where id = any(${order.items}::bigint[]) order by id`;
    expect(onShard.map((i) => i.order_id)).toEqual(order.items.map(() => order.id));
    await shot(page, 'order-items');
    await page.locator(`tr[data-key="${order.items[0]}"] a.row-link`).click();
    await page.waitForURL((u) => u.pathname.endsWith('/row'));
    await page.locator('a.referenced').click();
    await page.waitForURL((u) => u.searchParams.get('key') === order.id);
    await expect(page.locator('.database-name').textContent()).resolves.toBe(order.shard);

    expect(errors).toEqual([]);
    expect(requests.filter((url) => !url.startsWith(address))).toEqual([]);
    // The screenshots are in test-output/, as PNG.
    expect(shots.map((f) => path.basename(f))).toEqual([
      'data-browser-index.png',
      'data-browser-table.png',
      'data-browser-row.png',
      'data-browser-order.png',
      'data-browser-order-items.png',
    ]);
    for (const file of shots) {
      expect(fs.readFileSync(file).subarray(0, 8)).toEqual(
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      );
    }
  });

  it('pages a numeric key in number order', async (ctx) => {
    const app = await appWith({ contexts, token: undefined, open: true });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    browser ??= await launchChromiumOrSkip(ctx);
    await db.sql`create table users.numbered (id numeric primary key, label text not null)`;
    // Negative, fractional and of different lengths: as text, -5 < -292.75 < 10 < 100 < 2.5 < 9.
    await db.sql`
      insert into users.numbered
      select v, 'n' || v from unnest(array[9, 10, 100, -5, 2.5]::numeric[]) v
      union all select i * 7.25 - 300, 'g' || i from generate_series(1, 110) i`;
    const expected = await db.sql<{ id: string; label: string }[]>`
      select n.id::text, n.label from users.numbered n order by n.id`;
    const ids = expected.map((e) => e.id);
    expect(ids).toHaveLength(115);
    expect(ids.slice(0, 2)).toEqual(['-292.75', '-285.50']);
    expect(ids.slice(-3)).toEqual(['483.00', '490.25', '497.50']);
    // As text they would be in another order: the comparison below can fail.
    expect([...ids].sort()).not.toEqual(ids);
    expect([...ids].sort((a, b) => a.localeCompare(b))).not.toEqual(ids);

    const { page, errors } = watchPage(await browser.newPage());
    await page.goto(`${address}${BASE}/users/main/users/numbered`);
    const shown: Array<{ id: string; label: string }> = [];
    let pages = 0;
    for (;;) {
      pages++;
      const rows = await shownRows(page);
      expect(rows.map((r) => r.key)).toEqual(rows.map((r) => r.cells[0]));
      expect(
        rows.map((r) => ({ id: r.cells[0]!, label: r.cells[1]! })),
        `page ${pages}`,
      ).toEqual(expected.slice((pages - 1) * 50, pages * 50));
      shown.push(...rows.map((r) => ({ id: r.cells[0]!, label: r.cells[1]! })));
      const next = page.locator('a.next');
      if ((await next.count()) === 0) break;
      await Promise.all([
        page.waitForURL((u) => u.searchParams.get('after') === shown.at(-1)!.id),
        next.first().click(),
      ]);
    }
    expect(pages).toBe(3);
    expect(shown).toEqual(expected);
    expect(errors).toEqual([]);
    await page.close();
    await db.sql`drop table users.numbered`;
  });

  it('fails instead of skipping when chromium is missing in CI, and skips with the reason elsewhere', async () => {
    const missing = path.join(OUTPUT, 'no-such-chromium');
    const notes: string[] = [];
    const ctx = {
      skip(note?: string): never {
        notes.push(note ?? '');
        throw new Error('skipped');
      },
    };
    for (const CI of ['true', '1']) {
      await expect(launchChromiumOrSkip(ctx, { executablePath: missing, env: { CI } })).rejects.toThrow(
        `${missing} is not installed (apt-get install chromium): the browser tests must run in CI`,
      );
    }
    expect(notes).toEqual([]);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      for (const env of [{}, { CI: '' }, { CI: 'false' }]) {
        await expect(launchChromiumOrSkip(ctx, { executablePath: missing, env })).rejects.toThrow('skipped');
      }
      expect(warn).toHaveBeenCalledWith(
        `[stratum tests] skipped a browser test: ${missing} is not installed (apt-get install chromium)`,
      );
    } finally {
      warn.mockRestore();
    }
    expect(notes).toEqual(Array(3).fill(`${missing} is not installed (apt-get install chromium)`));
  });
});
