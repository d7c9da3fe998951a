import type { InjectOptions } from 'fastify';
import { expect } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import type { App } from '../../src/http/app.ts';
import type { TestApp } from '../support/app.ts';
import type { TestDatabase } from '../support/db.ts';

/** One request's answer, or status 0 when none came within the burst's bound (a hang). */
export interface Answer {
  status: number;
  code: string | undefined;
  retryAfter: string | undefined;
  replayed: boolean;
  body: any;
}

/** Longer than any deadline of the app (2 s transactions, 3 s payment step): past it a request counts as hung. */
export const HANG_MS = 30_000;

function toAnswer(res: Awaited<ReturnType<App['inject']>>): Answer {
  let body: any;
  try {
    body = res.body === '' ? undefined : res.json();
  } catch {
    body = res.body;
  }
  const retryAfter = res.headers['retry-after'];
  return {
    status: res.statusCode,
    code: typeof body === 'object' && body !== null && typeof body.code === 'string' ? body.code : undefined,
    retryAfter: retryAfter === undefined ? undefined : String(retryAfter),
    replayed: res.headers['idempotent-replayed'] === 'true',
    body,
  };
}

async function answerOf(app: App, request: InjectOptions, withinMs: number): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<Answer>((resolve) => {
    timer = setTimeout(
      () => resolve({ status: 0, code: 'NO_ANSWER', retryAfter: undefined, replayed: false, body: undefined }),
      withinMs,
    );
  });
  try {
    return await Promise.race([app.inject(request).then(toAnswer), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends every request at once (no request waits for another) and collects the answers in request order. */
export function burst(app: App, requests: InjectOptions[], withinMs = HANG_MS): Promise<Answer[]> {
  return Promise.all(requests.map((request) => answerOf(app, request, withinMs)));
}

/** "201 x40, 409 USER.ALREADY_EXISTS x12, ..." for assertion messages. */
export function tally(answers: Answer[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) {
    const key = a.status === 0 ? 'no answer' : `${a.status}${a.code ? ` ${a.code}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k} x${n}`).join(', ');
}

/**
 * The answers a burst may not give: a status outside `allowed`, any 5xx other than 503, a 503 without
 * Retry-After, or no answer at all. Each is described with its index, code and detail.
 */
export function misfits(answers: Answer[], allowed: readonly number[]): string[] {
  const bad: string[] = [];
  answers.forEach((a, i) => {
    if (a.status === 0) bad.push(`#${i}: no answer within ${HANG_MS} ms`);
    else if (a.status === 503 && a.retryAfter === undefined) bad.push(`#${i}: 503 ${a.code} without Retry-After`);
    else if (a.status !== 503 && !allowed.includes(a.status))
      bad.push(`#${i}: ${a.status} ${a.code ?? ''} ${a.body?.detail ?? ''}`.trim());
  });
  return bad;
}

/** Asserts every answer of a burst is allowed (see misfits), naming the tally in the failure. */
export function expectOnlyAllowed(answers: Answer[], allowed: readonly number[]): void {
  expect(misfits(answers, allowed), `answers: ${tally(answers)}`).toEqual([]);
}

/** The shard id the catalog maps a customer to. */
export async function shardOfCustomer(sql: Sql, customerId: number): Promise<number> {
  const [row] = await sql<
    { shard_id: number }[]
  >`select shard_id from sharding.buckets where bucket = ${bucketOfKey(customerId)}`;
  return row!.shard_id;
}

/** `perShard` customers on each of `shardCount` shards, from ids `from` on: result[shard] = customer ids. */
export async function customersByShard(
  sql: Sql,
  shardCount: number,
  perShard: number,
  from: number,
): Promise<number[][]> {
  const found: number[][] = Array.from({ length: shardCount }, () => []);
  for (let id = from; found.some((c) => c.length < perShard); id++) {
    const shard = await shardOfCustomer(sql, id);
    if (found[shard]!.length < perShard) found[shard]!.push(id);
  }
  return found;
}

export interface StoredOrder {
  shard: number;
  customerId: number;
  status: string;
  totalAmount: string;
  /** [productId, quantity, price] in item id order. */
  items: Array<[number, number, string]>;
}

/** Every copy of an order id across the shards (exactly one is right), with its items as its shard has them. */
export async function storedCopies(shards: Sql[], id: number): Promise<StoredOrder[]> {
  const found = await Promise.all(
    shards.map(async (sql, shard) => {
      const rows = await sql<{ customer_id: string; status: string; total_amount: string }[]>`
      select customer_id, status, total_amount::text from orders.orders where id = ${id}`;
      if (rows.length === 0) return [];
      const items = await sql<{ product_id: string; quantity: number; price: string }[]>`
      select product_id, quantity, price::text from orders.order_items where order_id = ${id} order by id`;
      return rows.map((r) => ({
        shard,
        customerId: Number(r.customer_id),
        status: r.status,
        totalAmount: r.total_amount,
        items: items.map((i) => [Number(i.product_id), i.quantity, i.price] as [number, number, string]),
      }));
    }),
  );
  return found.flat();
}

/** Items whose order is on another shard or on none (an item must live with its order). */
export async function strayItems(shards: Sql[]): Promise<number> {
  const counts = await Promise.all(
    shards.map(
      async (sql) =>
        (
          await sql<{ n: number }[]>`
    select count(*)::int as n from orders.order_items i where not exists (select 1 from orders.orders o where o.id = i.order_id)`
        )[0]!.n,
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Prepared transactions left on the shards (gids). */
export async function preparedLeft(shards: Sql[]): Promise<string[]> {
  const rows = await Promise.all(
    shards.map((sql) => sql<{ gid: string }[]>`select gid from pg_prepared_xacts where database = current_database()`),
  );
  return rows.flat().map((r) => r.gid);
}

/** Two-phase decisions in the catalog none of whose branches is still prepared (kept for nothing). */
export async function decisionsWithoutBranches(catalog: Sql, shards: Sql[]): Promise<string[]> {
  const branches = new Set((await preparedLeft(shards)).map((gid) => gid.slice(0, gid.lastIndexOf(':'))));
  const decisions = await catalog<{ gid: string }[]>`select gid from sharding.decisions`;
  return decisions.map((d) => d.gid).filter((gid) => !branches.has(gid));
}

/** Sagas still running or compensating. */
export async function unfinishedSagas(catalog: Sql): Promise<string[]> {
  const rows = await catalog<
    { id: string; status: string }[]
  >`select id, status from sharding.sagas where status in ('running', 'compensating')`;
  return rows.map((r) => `${r.id} ${r.status}`);
}

/** The app still serves a fresh creation normally after the burst (nothing wedged, no restart). */
export async function expectFreshOrderServed(app: App, customerId: number): Promise<void> {
  const created = await app.inject({
    method: 'POST',
    url: '/orders',
    payload: { customerId, items: [{ productId: 1, quantity: 1, price: '1.00' }] },
  });
  expect(created.statusCode, created.body).toBe(201);
  const read = await app.inject({ method: 'GET', url: `/orders/${created.json().id}` });
  expect(read.statusCode, read.body).toBe(200);
}

/** Connections still open to the test database's orders shards (its own inspection pools excluded). */
async function shardConnectionsLeft(db: TestDatabase): Promise<number> {
  await Promise.all((await db.shards()).map((p) => p.end({ timeout: 5 })));
  const check = db.pool(1, `check-${db.name}`);
  try {
    let left = 0;
    for (let i = 0; i < 40; i++) {
      left = (
        await check<
          { n: number }[]
        >`select count(*)::int as n from pg_stat_activity where datname like ${`${db.name}\\_orders\\_%`}`
      )[0]!.n;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return left;
  } finally {
    await check.end({ timeout: 5 });
  }
}

/** How long the app may take to close once the burst is over (it waits for what is still running). */
const CLOSE_MS = 30_000;

/**
 * Closes the app, fails if it does not close in time or left a connection to a shard open, and drops the
 * database in any case (which fails if a connection to the main database was left open).
 */
export async function closeAndDrop(app: TestApp | undefined, db: TestDatabase | undefined): Promise<void> {
  const problems: string[] = [];
  if (app) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), CLOSE_MS);
    });
    const closing = app.close().then(
      () => true,
      (error: Error) => {
        problems.push(`closing the app failed: ${error.message}`);
        return true;
      },
    );
    const closed = await Promise.race([closing, late]).finally(() => clearTimeout(timer));
    if (!closed) problems.push(`the app did not close within ${CLOSE_MS} ms`);
  }
  if (db) {
    const left = await shardConnectionsLeft(db);
    if (left > 0) problems.push(`${left} connection(s) to the orders shards were left open`);
    await db.drop().catch((error: Error) => problems.push(error.message));
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
}
