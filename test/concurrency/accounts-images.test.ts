import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { burst, closeAndDrop, expectOnlyAllowed, type Answer } from './support.ts';

// 84 account and image writes at once: creations, renames and image changes of 3 hot accounts, and image
// changes of an account that does not exist; the accounts and images pools have 5 connections each.
let db: TestDatabase;
let stratum: TestApp;
let inspect: Sql;
let hot: string[];
const UNKNOWN = '00000000-0000-4000-8000-000000000000';

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 3 });
  stratum = await startTestApp(db, { poolMax: 3 });
  inspect = db.pool(2);
  hot = [];
  for (const name of ['Hot_0', 'Hot_1', 'Hot_2']) {
    const res = await stratum.app.inject({ method: 'POST', url: '/accounts', payload: { name } });
    expect(res.statusCode, res.body).toBe(201);
    hot.push(res.json().id);
  }
});

afterAll(async () => {
  await closeAndDrop(stratum, db);
});

type Kind = 'create' | 'rename' | 'image' | 'image-unknown';
interface Write {
  kind: Kind;
  account?: string;
  value: string;
  request: InjectOptions;
}

function writes(): Write[] {
  return Array.from({ length: 84 }, (_, i): Write => {
    const account = hot[i % 3]!;
    if (i % 4 === 0)
      return {
        kind: 'create',
        value: `New_${i}`,
        request: { method: 'POST', url: '/accounts', payload: { name: `New_${i}` } },
      };
    if (i % 4 === 3) {
      const url = `https://img.example/${i}.png`;
      if (i % 28 === 3)
        return {
          kind: 'image-unknown',
          account: UNKNOWN,
          value: url,
          request: { method: 'PUT', url: `/accounts/${UNKNOWN}/image`, payload: { url } },
        };
      return {
        kind: 'image',
        account,
        value: url,
        request: { method: 'PUT', url: `/accounts/${account}/image`, payload: { url } },
      };
    }
    return {
      kind: 'rename',
      account,
      value: `Name_${i}`,
      request: { method: 'PUT', url: `/accounts/${account}`, payload: { name: `Name_${i}` } },
    };
  });
}

/** The outbox events of one type for one account, in commit order (seq is taken after the row lock). */
async function outboxOf(type: string, account: string): Promise<Array<Record<string, string>>> {
  const rows = await inspect<
    { payload: Record<string, string> }[]
  >`select payload from messaging.outbox where type = ${type} and key = ${account} order by seq`;
  return rows.map((r) => r.payload);
}

describe('account and image writes, 84 at once on 3 hot accounts', () => {
  let plan: Write[];
  let answers: Answer[];

  beforeAll(async () => {
    plan = writes();
    answers = await burst(
      stratum.app,
      plan.map((w) => w.request),
    );
  });

  const acked = (kind: Kind, account?: string) =>
    plan
      .map((w, i) => ({ w, a: answers[i]! }))
      .filter(
        ({ w, a }) =>
          w.kind === kind &&
          (account === undefined || w.account === account) &&
          a.status === (kind === 'create' ? 201 : 200),
      );

  it('answers each with its success code, 404 for the unknown account, or 503 with Retry-After', () => {
    expectOnlyAllowed(answers, [200, 201, 404]);
    plan.forEach((w, i) => {
      const a = answers[i]!;
      if (a.status === 404) expect(w.kind).toBe('image-unknown');
      if (w.kind === 'image-unknown') expect(a.code).toBe('ACCOUNT.NOT_FOUND');
    });
  });

  it('stores every acknowledged creation once, with exactly one CREATED event, and no other', async () => {
    const created = acked('create');
    expect(created.length).toBeGreaterThan(0);
    const stored = await inspect<{ id: string; name: string; created: number; other: number }[]>`
      select a.id, a.name,
        (select count(*)::int from accounts.account_events e where e.account_id = a.id and e.event_name = 'CREATED') as created,
        (select count(*)::int from accounts.account_events e where e.account_id = a.id and e.event_name <> 'CREATED') as other
      from accounts.accounts a where a.name like 'New\\_%' order by a.name`;
    expect(stored.map((s) => s.id).sort()).toEqual(created.map(({ a }) => a.body.id).sort());
    for (const s of stored) {
      expect(s.name).toBe(created.find(({ a }) => a.body.id === s.id)!.w.value);
      expect([s.created, s.other]).toEqual([1, 0]);
    }
  });

  it('keeps one CREATED and one UPDATED per acknowledged rename; the last acknowledged name stands', async () => {
    for (const account of hot) {
      const renames = acked('rename', account);
      expect(renames.length).toBeGreaterThan(0);
      const events = await inspect<{ event_name: string; n: number }[]>`
        select event_name, count(*)::int as n from accounts.account_events where account_id = ${account} group by event_name order by event_name`;
      expect(events).toEqual([
        { event_name: 'CREATED', n: 1 },
        { event_name: 'UPDATED', n: renames.length },
      ]);
      // Renames of one account take turns on its row: the k-th to commit answered with k UPDATED events.
      const seen = renames
        .map(({ a }) => (a.body.events as Array<{ eventName: string }>).filter((e) => e.eventName === 'UPDATED').length)
        .sort((x, y) => x - y);
      expect(seen).toEqual(renames.map((_, k) => k + 1));
      const last = renames.find(
        ({ a }) =>
          a.body.events.filter((e: { eventName: string }) => e.eventName === 'UPDATED').length === renames.length,
      )!;
      const [row] = await inspect<{ name: string }[]>`select name from accounts.accounts where id = ${account}`;
      expect(row!.name).toBe(last.w.value);
      const updated = await outboxOf('account.updated', account);
      expect(updated.map((p) => p.name)).toHaveLength(renames.length);
      expect(updated.at(-1)!.name).toBe(last.w.value);
    }
  });

  it('keeps one image row per account, the last acknowledged url, and none for the unknown account', async () => {
    for (const account of hot) {
      const images = acked('image', account);
      expect(images.length).toBeGreaterThan(0);
      const rows = await inspect<
        { url: string }[]
      >`select url from images.account_images where account_id = ${account}`;
      expect(rows).toHaveLength(1);
      const changes = await outboxOf('image.changed', account);
      expect(changes).toHaveLength(images.length);
      expect(images.map(({ w }) => w.value)).toContain(changes.at(-1)!.url);
      expect(rows[0]!.url).toBe(changes.at(-1)!.url);
      for (const { a, w } of images) expect(a.body).toEqual({ accountId: account, url: w.value });
    }
    expect(await inspect`select 1 from images.account_images where account_id = ${UNKNOWN}`).toHaveLength(0);
  });

  it('reads back each hot account with its last name and image (no stale cached view)', async () => {
    for (const account of hot) {
      const res = await stratum.app.inject({ method: 'GET', url: `/accounts/${account}` });
      expect(res.statusCode, res.body).toBe(200);
      const [row] = await inspect<{ name: string; url: string }[]>`
        select a.name, i.url from accounts.accounts a join images.account_images i on i.account_id = a.id where a.id = ${account}`;
      expect(res.json()).toMatchObject({ id: account, name: row!.name, imageData: { url: row!.url } });
    }
  });

  it('still serves a fresh creation and rename normally', async () => {
    const created = await stratum.app.inject({ method: 'POST', url: '/accounts', payload: { name: 'After' } });
    expect(created.statusCode, created.body).toBe(201);
    const renamed = await stratum.app.inject({
      method: 'PUT',
      url: `/accounts/${created.json().id}`,
      payload: { name: 'After_2' },
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
  });
});
