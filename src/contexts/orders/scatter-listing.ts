import { abortable } from '../../platform/db/abortable.ts';
import type { Sql } from '../../platform/db/connect.ts';
import { bucketOfKey } from '../../platform/sharding/buckets.ts';
import { readBucket } from '../../platform/sharding/routing.ts';
import { mergeDescending, scatter, type Consistency } from '../../platform/sharding/scatter.ts';
import type { Shard, ShardSet } from '../../platform/sharding/shard-set.ts';
import { ORDER_STATUSES, type Order, type OrderStats, type OrderStatus } from './order.ts';
import { ordersByIdsQuery, orderStatsQuery, shardPageQuery } from './orders-repository.ts';

/**
 * Reads over every shard at once: a page of orders newest first merged from each shard's page, and the counts
 * by status summed. A customer's page is read on the customer's shard alone.
 */

export interface OrderPage {
  /** The page's orders with their items, newest first. */
  items: Order[];
  /** Shards that did not answer (consistency=partial only). */
  missingShards: number[];
  /** The page's last id when a next page may follow (the cursor). */
  lastId: number | undefined;
}

export interface ListQuery {
  customerId?: number;
  status?: OrderStatus;
  beforeId?: number;
  limit: number;
  consistency: Consistency;
}

export interface ScatterListingDeps {
  shards: ShardSet;
  /** Deadline of each shard's part of a listing or stats. */
  shardDeadlineMs: number;
}

/**
 * How many orders each shard sends whole with the ids of its page: its share of the page plus a margin (about
 * two standard deviations when orders are spread evenly), so that the merged page rarely needs a second
 * statement; a page dominated by one shard (its ids run ahead) takes one for that shard.
 */
export function wholeOrdersPerShard(limit: number, shardCount: number): number {
  return Math.min(limit, Math.ceil(limit / shardCount) + Math.ceil(Math.sqrt(limit)));
}

export function scatterListing({ shards, shardDeadlineMs }: ScatterListingDeps) {
  /** Reads `bucket`'s orders on its owner; empty lists are confirmed by ownership (a moved bucket is looked up again). */
  async function onOwner<T>(bucket: number, read: (sql: Sql) => Promise<T[]>): Promise<T[]> {
    return (
      (await readBucket(shards, bucket, async (sql) => {
        const rows = await read(sql);
        return rows.length > 0 ? rows : undefined;
      })) ?? []
    );
  }

  /** One customer's page, on the customer's shard. */
  async function customerPage(customerId: number, query: ListQuery): Promise<OrderPage> {
    const rows = await onOwner(bucketOfKey(customerId), (sql) =>
      shardPageQuery(sql, { ...query, ownedOnly: true }, query.limit),
    );
    return {
      items: rows.map((r) => r.order!),
      missingShards: [],
      lastId: rows.length === query.limit ? Number(rows.at(-1)!.id) : undefined,
    };
  }

  return {
    async list(query: ListQuery): Promise<OrderPage> {
      if (query.customerId !== undefined) return customerPage(query.customerId, query);
      // One statement per shard, all at once: each sends the ids of its whole page and about its share of the
      // orders whole (see wholeOrdersPerShard). Only a shard holding more of the merged page than it sent whole
      // is asked again, for just those orders, within what is left of the deadline.
      const all = shards.all();
      const started = Date.now();
      const withOrders = wholeOrdersPerShard(query.limit, all.length);
      const pages = await scatter(all, shardDeadlineMs, query.consistency, async (shard, signal) => {
        const rows = await abortable(shardPageQuery(shard.sql, { ...query, ownedOnly: true }, withOrders), signal);
        return rows.map((r) => ({ id: Number(r.id), order: r.order, shard }));
      });
      const kept = mergeDescending(
        pages.answers.map((a) => a.value),
        (o) => o.id,
        query.limit,
      );
      const lacking = new Map<Shard, number[]>();
      for (const row of kept) {
        if (row.order !== null) continue;
        const ids = lacking.get(row.shard) ?? [];
        ids.push(row.id);
        lacking.set(row.shard, ids);
      }
      let late: typeof pages.missing = [];
      const fetched = new Map<number, Order>();
      if (lacking.size > 0) {
        const deadlineLeft = Math.max(1, shardDeadlineMs - (Date.now() - started));
        const more = await scatter([...lacking.keys()], deadlineLeft, query.consistency, async (shard, signal) =>
          abortable(ordersByIdsQuery(shard.sql, lacking.get(shard)!), signal),
        );
        for (const { value } of more.answers) for (const r of value) fetched.set(Number(r.id), r.order!);
        late = more.missing;
      }
      // An order deleted between the two statements is left out; the cursor still follows the merged ids.
      const items: Order[] = [];
      for (const row of kept) {
        const order = row.order ?? fetched.get(row.id);
        if (order !== undefined) items.push(order);
      }
      const missingShards = [...new Set([...pages.missing, ...late].map((m) => m.shard.id))].sort((a, b) => a - b);
      return { items, missingShards, lastId: kept.length === query.limit ? kept.at(-1)!.id : undefined };
    },

    async stats(consistency: Consistency): Promise<OrderStats & { missingShards: number[] }> {
      const { answers, missing } = await scatter(shards.all(), shardDeadlineMs, consistency, (shard, signal) =>
        statsOf(shard.sql, signal),
      );
      const byStatus = Object.fromEntries(ORDER_STATUSES.map((s) => [s, 0])) as Record<OrderStatus, number>;
      for (const { value } of answers) for (const s of ORDER_STATUSES) byStatus[s] += value[s] ?? 0;
      return {
        byStatus,
        total: Object.values(byStatus).reduce((a, b) => a + b, 0),
        missingShards: missing.map((m) => m.shard.id),
      };
    },
  };
}

async function statsOf(sql: Sql, signal: AbortSignal): Promise<Partial<Record<OrderStatus, number>>> {
  const rows = await abortable(orderStatsQuery(sql), signal);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
