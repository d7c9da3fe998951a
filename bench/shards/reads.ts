import type { Sql } from '../../src/platform/db/connect.ts';
import { encodeCursor } from '../../src/platform/pagination/cursor.ts';
import { mergeDescending } from '../../src/platform/sharding/scatter.ts';
import type { Shard } from '../../src/platform/sharding/shard-set.ts';
import { orderStatsQuery, shardPageQuery } from '../../src/contexts/orders/orders-repository.ts';
import type { Order } from '../../src/contexts/orders/order.ts';
import type { PageRow } from '../../src/contexts/orders/orders-repository.ts';
import { wholeOrdersPerShard } from '../../src/contexts/orders/scatter-listing.ts';
import { READ_SHARD_COUNT } from './read-dataset.ts';

/** One cross-shard read: the stratum request, and the query stratum sends each shard for it. */
export interface ReadCase {
  key: 'first' | 'deep' | 'stats' | 'stats-vs-count';
  name: string;
  /** Path and query of the stratum request. */
  path: string;
  /**
   * The shard's own query for this request, rows read: for a page, the statement stratum sends each shard
   * (shardPageQuery, same text) asked for the whole page with every order whole, as one shard alone would
   * answer it; for the stats, orderStatsQuery, exactly as stratum sends it.
   */
  askShard(sql: Sql): Promise<unknown>;
  /** The statement stratum itself sends each shard for this request, when it differs from askShard. */
  askShardAsStratum?(sql: Sql): Promise<unknown>;
  /** Throws unless stratum's answer is what the shards' own answers add up to. */
  check(stratumBody: unknown, shardAnswers: unknown[]): void;
}

const LIMIT = 50;
const STATUS = 'pending';

/**
 * The three reads: the first page of pending orders, a page from the middle of them (a cursor at half the
 * shards' sequence range, as if a client had paged that far), and the stats.
 */
export function defineReads(ordersPerShard: number): ReadCase[] {
  const statsCase = (
    key: 'stats' | 'stats-vs-count',
    name: string,
    askShard: (sql: Sql) => Promise<unknown>,
  ): ReadCase => ({
    key,
    name,
    path: '/orders/stats',
    askShard,
    check(body, answers) {
      const total = (answers as Array<Array<{ n: number }>>).flat().reduce((sum, r) => sum + r.n, 0);
      const got = (body as { total: number }).total;
      if (got !== total || total !== ordersPerShard * answers.length) {
        throw new Error(
          `GET /orders/stats: stratum counted ${got} orders, the shards ${total}, the data set holds ${ordersPerShard * answers.length}`,
        );
      }
    },
  });
  // Ids are (seq * 64 + shard) * 1024 + bucket and each shard's sequence ran 1..ordersPerShard.
  const middleId = Math.floor(ordersPerShard / 2) * 64 * 1024;
  const page = (key: 'first' | 'deep', name: string, beforeId: number | undefined): ReadCase => ({
    key,
    name,
    path: `/orders?status=${STATUS}&limit=${LIMIT}${beforeId === undefined ? '' : `&cursor=${encodeCursor({ id: beforeId })}`}`,
    askShard: (sql) =>
      shardPageQuery(sql, { status: STATUS, beforeId, limit: LIMIT, ownedOnly: true }, LIMIT).then((rows) => [...rows]),
    askShardAsStratum: (sql) =>
      shardPageQuery(
        sql,
        { status: STATUS, beforeId, limit: LIMIT, ownedOnly: true },
        wholeOrdersPerShard(LIMIT, READ_SHARD_COUNT),
      ).then((rows) => [...rows]),
    check(body, answers) {
      const got = (body as { items: Order[] }).items;
      const pages = (answers as PageRow[][]).map((rows) => rows.map((r) => r.order!));
      const expected = mergeDescending(pages, (o) => o.id, LIMIT);
      if (got.length !== LIMIT || JSON.stringify(got) !== JSON.stringify(expected)) {
        throw new Error(
          `${name}: stratum answered ${got.length} orders, not the ${expected.length} newest of the shards' own pages`,
        );
      }
    },
  });
  return [
    page('first', `GET /orders?status=${STATUS}&limit=${LIMIT}, first page`, undefined),
    page('deep', `GET /orders?status=${STATUS}&limit=${LIMIT}, a page from the middle (cursor)`, middleId),
    statsCase('stats', 'GET /orders/stats (the shard query: its status counters)', (sql) =>
      orderStatsQuery(sql).then((rows) => [...rows]),
    ),
    // The query one shard would need without counters: counting its orders. Stratum's stats read counters.
    statsCase('stats-vs-count', 'GET /orders/stats (the shard query: count its orders by status)', (sql) =>
      sql<{ status: string; n: number }[]>`select status, count(*)::int as n from orders.orders group by status`.then(
        (rows) => [...rows],
      ),
    ),
  ];
}

/** GET `path` and read the whole body; throws unless 200. */
export async function getJson(baseUrl: string, path: string): Promise<unknown> {
  const response = await fetch(`${baseUrl}${path}`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Asks stratum and every shard directly once, and checks stratum's answer against theirs. */
export async function checkRead(read: ReadCase, baseUrl: string, shards: readonly Shard[]): Promise<void> {
  const [body, answers] = await Promise.all([
    getJson(baseUrl, read.path),
    Promise.all(shards.map((s) => read.askShard(s.sql))),
  ]);
  read.check(body, answers);
}
