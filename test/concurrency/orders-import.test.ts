import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/platform/db/connect.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import {
  burst,
  closeAndDrop,
  customersByShard,
  expectFreshOrderServed,
  expectOnlyAllowed,
  shardOfCustomer,
  storedCopies,
  strayItems,
  type Answer,
} from './support.ts';

// 61 CSV imports and one cancellation in flight at once on 3 hot orders (on different shards, pools of 2): imports of
// one order take turns on its row; the cancelled order refuses the imports that come after its cancellation.
let db: TestDatabase;
let stratum: TestApp;
let shards: Sql[];
let hot: Array<{ id: number; customerId: number }>;

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 4 });
  stratum = await startTestApp(db, { poolMax: 4, shardPoolMax: 2, ordersShardCount: 4 });
  shards = await db.shards();
  const customers = (await customersByShard(db.sql, 4, 1, 20)).flat().slice(0, 3);
  hot = [];
  for (const customerId of customers) {
    const res = await stratum.app.inject({
      method: 'POST',
      url: '/orders',
      payload: { customerId, items: [{ productId: 1, quantity: 1, price: '1.00' }] },
    });
    expect(res.statusCode, res.body).toBe(201);
    hot.push({ id: res.json().id, customerId });
  }
});

afterAll(async () => {
  await closeAndDrop(stratum, db);
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** 4 good rows, and on every third request a fifth that breaks the items' check (quantity 0). */
function csvFor(i: number): { text: string; good: number; bad: number } {
  const rows = Array.from({ length: 4 }, (_, k) => `${200 + k},${k + 1},${i % 10}.${k}0`);
  const bad = i % 3 === 0 ? 1 : 0;
  if (bad) rows.splice(2, 0, '299,0,1.00');
  return { text: `product_id,quantity,price\n${rows.join('\n')}\n`, good: 4, bad };
}

describe('POST /orders/:id/items/import, 61 at once on 3 hot orders', () => {
  let plan: Array<{ id: number; csv?: ReturnType<typeof csvFor> }>;
  let answers: Answer[];
  const cancelled = () => hot[2]!;

  beforeAll(async () => {
    const imports = Array.from({ length: 61 }, (_, i) => ({ id: hot[i % 3]!.id, csv: csvFor(i) }));
    plan = [...imports.slice(0, 30), { id: cancelled().id }, ...imports.slice(30)];
    const request = (p: (typeof plan)[number]) =>
      p.csv
        ? {
            method: 'POST' as const,
            url: `/orders/${p.id}/items/import?chunkSize=1`,
            headers: { 'content-type': 'text/csv' },
            payload: p.csv.text,
          }
        : { method: 'PATCH' as const, url: `/orders/${p.id}`, payload: { status: 'cancelled' } };
    // Three waves 5 ms apart, none waiting for another's answers: a JSON body is parsed before its handler
    // runs while a CSV body streams into it, so a cancellation sent with the imports would queue behind all of them.
    const first = burst(stratum.app, plan.slice(0, 30).map(request));
    await pause(5);
    const cancel = burst(stratum.app, [request(plan[30]!)]);
    await pause(5);
    const rest = burst(stratum.app, plan.slice(31).map(request));
    answers = [...(await first), ...(await cancel), ...(await rest)];
  });

  it('answers 200 with what it imported and rejected, or 409 once the order is cancelled', () => {
    expectOnlyAllowed(answers, [200, 409]);
    for (const [i, a] of answers.entries()) {
      const { id, csv } = plan[i]!;
      if (!csv) {
        expect(a.status).toBe(200);
        continue;
      }
      if (a.status === 409) {
        expect(id).toBe(cancelled().id);
        expect(a.code).toBe('ORDER.INVALID_TRANSITION');
      }
      if (a.status === 200) {
        expect(a.body.imported).toBe(csv.good);
        expect(a.body.rejected).toHaveLength(csv.bad);
      }
    }
  });

  it('leaves each order with exactly its first item plus the rows acknowledged imported, all on its shard', async () => {
    for (const { id, customerId } of hot) {
      const acked = answers.filter((a, i) => plan[i]!.id === id && plan[i]!.csv && a.status === 200);
      const imported = acked.reduce((s, a) => s + (a.body.imported as number), 0);
      const copies = await storedCopies(shards, id);
      expect(copies.map((c) => c.shard)).toEqual([await shardOfCustomer(db.sql, customerId)]);
      expect(copies[0]!.items).toHaveLength(1 + imported);
      expect(copies[0]!.items.filter(([, quantity]) => quantity === 0)).toEqual([]);
      // The total was recomputed with the items, inside each import's transaction.
      const cents = copies[0]!.items.reduce((s, [, q, p]) => s + q * Math.round(Number(p) * 100), 0);
      expect(copies[0]!.totalAmount).toBe((cents / 100).toFixed(2));
      const shard = shards[copies[0]!.shard]!;
      const events = await shard<{ imported: number }[]>`
        select (payload->>'imported')::int as imported from messaging.outbox where type = 'order.items_imported' and payload->>'id' = ${String(id)}`;
      expect(events).toHaveLength(acked.length);
      expect(events.reduce((s, e) => s + e.imported, 0)).toBe(imported);
      const read = await stratum.app.inject({ method: 'GET', url: `/orders/${id}` });
      expect(read.json().items).toHaveLength(1 + imported);
    }
    expect(await strayItems(shards)).toBe(0);
  });

  it('cancelled the third order once; no import of it committed after the cancellation', async () => {
    const [copy] = await storedCopies(shards, cancelled().id);
    expect(copy!.status).toBe('cancelled');
    const shard = shards[copy!.shard]!;
    const events = await shard<{ type: string }[]>`
      select type from messaging.outbox where type in ('order.items_imported', 'order.status_changed') and payload->>'id' = ${String(cancelled().id)} order by seq`;
    const imports = answers.filter((_, i) => plan[i]!.id === cancelled().id && plan[i]!.csv);
    const acked = imports.filter((a) => a.status === 200).length;
    expect(events.map((e) => e.type)).toEqual([
      ...Array<string>(acked).fill('order.items_imported'),
      'order.status_changed',
    ]);
  });

  it('still serves a fresh order and import normally', async () => {
    await expectFreshOrderServed(stratum.app, hot[0]!.customerId);
    const res = await stratum.app.inject({
      method: 'POST',
      url: `/orders/${hot[0]!.id}/items/import`,
      headers: { 'content-type': 'text/csv' },
      payload: '5,1,1.00\n',
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().imported).toBe(1);
  });
});
