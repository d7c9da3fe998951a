import { bucketOfId, bucketOfKey } from '../../src/platform/sharding/buckets.ts';
import type {
  Check,
  ContentionSnapshot,
  CreationRecord,
  LineageRecord,
  OrderRow,
  OrderStatus,
} from './contention-records.ts';

const NEXT: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  pending: ['processing', 'cancelled'],
  processing: ['completed', 'cancelled'],
  completed: [],
  cancelled: [],
};
const RANK: Readonly<Record<OrderStatus, number>> = { pending: 0, processing: 1, completed: 2, cancelled: 2 };

/**
 * The statuses an order may end in: at or past every acknowledged change (two different terminal ones
 * cannot both be acknowledged), reached by steps that were acknowledged or may have happened.
 * @example allowedStatuses([{ to: 'processing', effect: 'acked' }, { to: 'completed', effect: 'unknown' }]) // processing, completed
 */
export function allowedStatuses(changes: LineageRecord['changes']): Set<OrderStatus> {
  const acked = changes.filter((c) => c.effect === 'acked').map((c) => c.to);
  const possible = new Set(changes.filter((c) => c.effect !== 'refused').map((c) => c.to));
  const terminal = new Set(acked.filter((s) => NEXT[s].length === 0));
  if (terminal.size > 1) return new Set();
  let floor: OrderStatus = 'pending';
  for (const s of acked) if (RANK[s] > RANK[floor]) floor = s;
  const allowed = new Set<OrderStatus>([floor]);
  for (let grew = true; grew;) {
    grew = false;
    for (const from of [...allowed]) {
      for (const to of NEXT[from])
        if (possible.has(to) && !allowed.has(to)) {
          allowed.add(to);
          grew = true;
        }
    }
  }
  return allowed;
}

/** Whether `n` is a sum of some of `sizes` (each used at most once). */
export function isSubsetSum(sizes: readonly number[], n: number): boolean {
  let sums = new Set([0]);
  for (const size of sizes) sums = new Set([...sums, ...[...sums].map((s) => s + size)]);
  return sums.has(n);
}

/**
 * Where a lineage must be: the id its acknowledged moves (and the 301s seen) lead to, its customer, and the
 * customers a transfer of unknown outcome from there may have moved it to. A 301 may skip ahead (a transfer
 * rewrites the forwards on its destination shard to point at the newest id), so a 301 of an id whose next
 * move is known must lead somewhere down that path. Problems in the moves themselves (an id moved twice, a
 * move nothing explains) are returned too.
 */
export function expectedPlace(lineage: LineageRecord): {
  id: string;
  customers: Set<number>;
  onwards: Set<number>;
  problems: string[];
} {
  const problems: string[] = [];
  const next = new Map<string, string>();
  const customerOf = new Map<string, Set<number>>([[lineage.originId, new Set([lineage.originCustomer])]]);
  const froms = (id: string, effects: readonly string[]) =>
    lineage.transfers.filter((t) => t.from === id && effects.includes(t.effect));
  for (const t of lineage.transfers) {
    if (t.effect !== 'acked') continue;
    const seen = next.get(t.from);
    if (seen !== undefined) problems.push(`order ${t.from} was moved twice: to ${seen} and to ${t.to}`);
    else next.set(t.from, t.to!);
    customerOf.set(t.to!, new Set([t.toCustomer]));
  }
  const skips: { from: string; to: string }[] = [];
  for (const move of lineage.movesSeen) {
    if (froms(move.from, ['acked', 'unknown']).length === 0)
      problems.push(`order ${move.from} moved to ${move.to} though every transfer of it was refused`);
    if (next.has(move.from)) {
      skips.push(move);
      continue;
    }
    next.set(move.from, move.to);
    if (!customerOf.has(move.to))
      customerOf.set(move.to, new Set(froms(move.from, ['unknown']).map((t) => t.toCustomer)));
  }
  const path = [lineage.originId];
  for (const visited = new Set(path); next.has(path.at(-1)!);) {
    const id = next.get(path.at(-1)!)!;
    if (visited.has(id)) {
      problems.push(`the moves of order ${lineage.originId} loop back to ${id}`);
      break;
    }
    visited.add(id);
    path.push(id);
  }
  const id = path.at(-1)!;
  const onwards = new Set(froms(id, ['unknown']).map((t) => t.toCustomer));
  for (const skip of skips) {
    const at = path.indexOf(skip.from);
    // Down the path, or one unknown move past its end (an id the run never learned).
    if (at < 0 || (!path.slice(at + 1).includes(skip.to) && onwards.size === 0))
      problems.push(`order ${skip.from} forwards to ${skip.to}, which none of its moves led to`);
  }
  return { id, customers: customerOf.get(id) ?? new Set(), onwards, problems };
}

/** One order the run created and acknowledged: found once, where its acknowledged transfers put it, in an allowed status, with its items. */
export function judgeLineage(lineage: LineageRecord, rows: readonly OrderRow[]): string[] {
  const name = `order ${lineage.originId} (${lineage.tag})`;
  if (rows.length === 0) return [`${name} is lost: on no shard`];
  if (rows.length > 1)
    return [`${name} exists ${rows.length} times: ${rows.map((r) => `${r.id} on shard ${r.shardId}`).join(', ')}`];
  const row = rows[0]!;
  const place = expectedPlace(lineage);
  const problems = place.problems.map((p) => `${name}: ${p}`);
  if (row.id === place.id) {
    if (!place.customers.has(row.customerId))
      problems.push(
        `${name} is ${row.id} of customer ${row.customerId}; its last acknowledged customer is ${[...place.customers].join(' or ')}`,
      );
  } else if (!place.onwards.has(row.customerId)) {
    problems.push(
      `${name} is ${row.id} of customer ${row.customerId}; expected ${place.id} of customer ${[...place.customers].join(' or ')}` +
        (place.onwards.size > 0 ? ` or a move to customer ${[...place.onwards].join(' or ')}` : ''),
    );
  }
  const allowed = allowedStatuses(lineage.changes);
  if (!allowed.has(row.status as OrderStatus)) {
    problems.push(
      `${name} is ${row.status}; its changes allow ${allowed.size === 0 ? 'nothing (two terminal statuses acknowledged)' : [...allowed].join(' or ')}`,
    );
  }
  const ackedRows = lineage.imports
    .filter((i) => i.effect === 'acked')
    .reduce((sum, i) => sum + (i.imported ?? i.rows), 0);
  const unknownRows = lineage.imports.filter((i) => i.effect === 'unknown').map((i) => i.rows);
  const extra = row.items - lineage.initialItems - ackedRows;
  if (!isSubsetSum(unknownRows, extra)) {
    problems.push(
      `${name} has ${row.items} items: ${lineage.initialItems} created + ${ackedRows} imported` +
        (unknownRows.length > 0 ? ` + some of ${unknownRows.join(', ')} (imports of unknown outcome)` : ''),
    );
  }
  return problems;
}

/** A creation that was not acknowledged: refused leaves nothing, unknown at most one untouched order. */
export function judgeCreation(creation: CreationRecord, rows: readonly OrderRow[]): string[] {
  if (creation.effect === 'refused' && rows.length > 0)
    return [`refused creation ${creation.tag} made order(s) ${rows.map((r) => r.id).join(', ')}`];
  if (rows.length > 1)
    return [
      `creation ${creation.tag} of unknown outcome made ${rows.length} orders: ${rows.map((r) => r.id).join(', ')}`,
    ];
  const row = rows[0];
  if (row && (row.customerId !== creation.customerId || row.status !== 'pending' || row.items !== creation.items)) {
    return [
      `creation ${creation.tag} of unknown outcome left order ${row.id} of customer ${row.customerId}, ${row.status}, with ${row.items} items`,
    ];
  }
  return [];
}

/**
 * Every order the run knows of exists exactly once across the shards, on the shard of its bucket, with its
 * items there and nowhere else and a total that matches them; acknowledged orders are judged by their
 * lineage, the others by their creation.
 */
export function judgeOrders(
  lineages: readonly LineageRecord[],
  creations: readonly CreationRecord[],
  snapshot: Pick<ContentionSnapshot, 'orders' | 'items' | 'shardOfBucket'>,
): Check[] {
  const byTag = new Map<string, OrderRow[]>();
  const placement: string[] = [];
  const seenIds = new Map<string, OrderRow>();
  for (const row of snapshot.orders) {
    const bucket = bucketOfId(Number(row.id));
    if (bucket !== bucketOfKey(row.customerId))
      placement.push(
        `order ${row.id} of customer ${row.customerId} carries bucket ${bucket}, its customer's is ${bucketOfKey(row.customerId)}`,
      );
    if (snapshot.shardOfBucket[bucket] !== row.shardId)
      placement.push(
        `order ${row.id} is on shard ${row.shardId}, its bucket on shard ${snapshot.shardOfBucket[bucket]}`,
      );
    if (!row.totalMatches) placement.push(`order ${row.id} has a total that is not the sum of its items`);
    const twin = seenIds.get(row.id);
    if (twin) placement.push(`order id ${row.id} is on shard ${twin.shardId} and on shard ${row.shardId}`);
    seenIds.set(row.id, row);
    if (row.notes !== null) byTag.set(row.notes, [...(byTag.get(row.notes) ?? []), row]);
    else if (row.sagaId === null) placement.push(`order ${row.id} of a run customer was made by no request of the run`);
  }
  for (const items of snapshot.items) {
    const owner = seenIds.get(items.orderId);
    if (!owner || owner.shardId !== items.shardId) {
      placement.push(
        `${items.items} item(s) of order ${items.orderId} on shard ${items.shardId}, ${owner ? `the order is on shard ${owner.shardId}` : 'an order that does not exist'}`,
      );
    }
  }
  const known = new Set([...lineages.map((l) => l.tag), ...creations.map((c) => c.tag)]);
  for (const [tag, rows] of byTag)
    if (!known.has(tag))
      placement.push(`order(s) ${rows.map((r) => r.id).join(', ')} carry ${tag}, which no request of the run sent`);
  const lineageProblems = lineages.flatMap((l) => judgeLineage(l, byTag.get(l.tag) ?? []));
  const creationProblems = creations.flatMap((c) => judgeCreation(c, byTag.get(c.tag) ?? []));
  const transfers = lineages.flatMap((l) => l.transfers);
  const acked = (list: readonly { effect: string }[]) => list.filter((x) => x.effect === 'acked').length;
  return [
    {
      name: 'every order once, on its shard, with its items there',
      problems: placement,
      summary: `${snapshot.orders.length} orders and their items on ${new Set(snapshot.orders.map((o) => o.shardId)).size} shard(s)`,
    },
    {
      name: 'orders as acknowledged: owner, status, items imported',
      problems: [...lineageProblems, ...creationProblems],
      summary:
        `${lineages.length} acknowledged orders after ${acked(transfers)} acknowledged transfers, ` +
        `${acked(lineages.flatMap((l) => l.changes))} status changes and ${acked(lineages.flatMap((l) => l.imports))} imports; ` +
        `${creations.filter((c) => c.effect === 'unknown').length} creations of unknown outcome`,
    },
  ];
}
