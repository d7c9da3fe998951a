import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import type { HttpAnswer, HttpTarget, RequestPlan } from './http-target.ts';
import type { Ledger } from './contention-ledger.ts';
import { openContentionDatabases, type ContentionDatabases } from './contention-snapshot.ts';
import type { ScenarioSettings } from './scenario.ts';

export interface HotCustomer {
  id: number;
  shard: number;
}

/** What the run contends on, and the databases it checks afterwards. */
export interface HotSet {
  customers: HotCustomer[];
  products: number[];
  /** Stock of each product (by index) on each shard, set before the load. */
  stock: number[];
  dbs: ContentionDatabases;
}

export const HOT_CUSTOMERS_PER_SHARD = 2;
/** Orders addressed: the most recently created ones, so the set stays small and hot while creations go on. */
export const HOT_ORDERS = 16;
/** The stock of the hot products on each shard: one runs out within seconds, one in a long run, one never. */
export const INITIAL_STOCK = [10, 80, 100_000] as const;
const SETUP_ATTEMPTS = 5;

/**
 * Customer and product ids of a run: a range of its own, derived from the run tag (its start time), so the
 * checks afterwards look only at what this run made.
 * @example runIdBase('mhq2x1a0') // 59_393_093_600_000
 */
export function runIdBase(runTag: string): number {
  return (parseInt(runTag, 36) % 1_000_000_000) * 100_000;
}

/**
 * The first customers from `base + 1` up, `perShard` of each shard, by the catalog's bucket map: a transfer can
 * then always go to another shard and to another customer of the same shard.
 * @example pickHotCustomers(0, assignBuckets(4), 2) // 2 customers on each of the 4 shards
 */
export function pickHotCustomers(base: number, shardOfBucket: readonly number[], perShard: number): HotCustomer[] {
  const shards = new Set(shardOfBucket);
  const picked: HotCustomer[] = [];
  for (let id = base + 1; picked.length < shards.size * perShard && id < base + 100_000; id += 1) {
    const shard = shardOfBucket[bucketOfKey(id)]!;
    if (picked.filter((c) => c.shard === shard).length < perShard) picked.push({ id, shard });
  }
  return picked.sort((a, b) => a.shard - b.shard || a.id - b.id);
}

/** Sends a setup request until it gets `plan.expectStatus` (a few tries): the load must start from a known state. */
async function setupRequest(target: HttpTarget, plan: RequestPlan): Promise<unknown> {
  let last = '';
  for (let attempt = 1; attempt <= SETUP_ATTEMPTS; attempt += 1) {
    let answer: HttpAnswer | undefined;
    const outcome = await target.send(
      {
        ...plan,
        onAnswer: (a) => {
          answer = a;
        },
      },
      performance.now(),
    );
    if (outcome.ok) return answer?.body;
    last = `${outcome.status ?? 'no answer'} ${outcome.code}`;
    await sleep(200 * attempt);
  }
  throw new Error(`setup: ${plan.method} ${plan.path} failed ${SETUP_ATTEMPTS} times, last ${last}`);
}

/**
 * Reads the bucket map, picks the hot customers, sets every hot product's stock on every shard and creates the
 * first hot orders (round robin over the customers), each recorded in the ledger.
 */
export async function prepareContention(
  target: HttpTarget,
  ledger: Ledger,
  settings: ScenarioSettings,
  orders: number,
  log: (line: string) => void,
): Promise<HotSet> {
  const dbs = await openContentionDatabases(settings.databaseUrl!);
  try {
    const base = runIdBase(settings.runTag);
    const customers = pickHotCustomers(base, dbs.shardOfBucket, HOT_CUSTOMERS_PER_SHARD);
    const products = INITIAL_STOCK.map((_, i) => base + 1 + i);
    for (const [i, product] of products.entries()) {
      await setupRequest(target, {
        kind: 'setup',
        method: 'PUT',
        path: `/inventory/${product}`,
        body: { available: INITIAL_STOCK[i] },
        expectStatus: 204,
      });
    }
    for (let i = 0; i < orders; i += 1) {
      const customer = customers[i % customers.length]!;
      const tag = `ct:${settings.runTag}:setup-${i}`;
      const items = [{ productId: products[i % products.length]!, quantity: 1, price: '2.50' }];
      // The key makes a retry after an answer lost in the load-free setup create nothing twice.
      const body = await setupRequest(target, {
        kind: 'setup',
        method: 'POST',
        path: '/orders',
        body: { customerId: customer.id, items, notes: tag },
        expectStatus: 201,
        headers: { 'idempotency-key': tag },
      });
      if (!ledger.onCreated(tag, customer.id, items.length, 201, body))
        throw new Error(
          `setup: POST /orders answered 201 with a body that is not the order: ${JSON.stringify(body)?.slice(0, 200)}`,
        );
    }
    log(
      `hot set: ${customers.length} customers on ${dbs.shards.length} shards (${customers.map((c) => `${c.id}@${c.shard}`).join(' ')}), ` +
        `${orders} orders, products ${products.map((p, i) => `${p} (stock ${INITIAL_STOCK[i]})`).join(', ')} on each shard`,
    );
    return { customers, products, stock: [...INITIAL_STOCK], dbs };
  } catch (error) {
    await dbs.close();
    throw error;
  }
}
