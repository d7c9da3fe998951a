import type { HttpTarget } from './http-target.ts';
import {
  fetchForReadBack,
  forEachConcurrently,
  summarizeVerdicts,
  type Fetched,
  type ReadBackOptions,
  type ReadBackResult,
  type ReadBackVerdict,
} from './read-back.ts';

/** An order the run created, as the run last saw it acknowledged. */
export interface ExpectedOrder {
  id: string;
  customerId: number;
  /** The status of the last 201 or 200 the run got for it. */
  status: string;
  /**
   * The status a change that failed (no answer, a timeout, an error) would have set: the change may or may not
   * have happened, so either status is right.
   */
  unconfirmed?: string;
}

/** One customer's listing, read through every page: the statuses each order id was listed with. */
export type Listing = { kind: 'listed'; statuses: Map<string, string[]> } | { kind: 'failed'; code: string };

const PAGE = 500;
// A cursor that never ends is a bug of the service; stop and let its repeats show as duplicates.
const MAX_PAGES = 10_000;

interface ListedOrder {
  id: number | string;
  customerId: number;
  status: string;
}
interface OrdersPage {
  items: ListedOrder[];
  nextCursor: string | null;
}

function isOrdersPage(body: unknown): body is OrdersPage {
  const b = body as { items?: unknown; nextCursor?: unknown } | null | undefined;
  return (
    Array.isArray(b?.items) &&
    (b.nextCursor === null || typeof b.nextCursor === 'string') &&
    b.items.every(
      (i: { id?: unknown; status?: unknown } | null) =>
        (typeof i?.id === 'number' || typeof i?.id === 'string') && typeof i.status === 'string',
    )
  );
}

function statusOf(body: unknown): string {
  const status = (body as { status?: unknown } | null | undefined)?.status;
  return typeof status === 'string' ? status : `malformed (${JSON.stringify(body)?.slice(0, 60)})`;
}

/** Reads all pages of `GET /orders?customerId=…`. */
export async function listCustomerOrders(
  target: HttpTarget,
  customerId: number,
  options: ReadBackOptions = {},
): Promise<Listing> {
  const statuses = new Map<string, string[]>();
  let cursor: string | null = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const path = `/orders?customerId=${customerId}&limit=${PAGE}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const fetched = await fetchForReadBack(target, path, { ...options, accept: isOrdersPage });
    if (fetched.kind === 'missing') return { kind: 'failed', code: '404' };
    if (fetched.kind === 'failed') return { kind: 'failed', code: fetched.code };
    const { items, nextCursor } = fetched.body as OrdersPage;
    for (const item of items) statuses.set(String(item.id), [...(statuses.get(String(item.id)) ?? []), item.status]);
    if (nextCursor === null || nextCursor === cursor) break;
    cursor = nextCursor;
  }
  return { kind: 'listed', statuses };
}

/**
 * Whether an order was found exactly once, by id and in its customer's listing, with the status the run last
 * got acknowledged. Missing from either read is lost, listed twice is a duplicate, a status neither acknowledged
 * nor possibly set by an unconfirmed change is wrong; a read that kept failing leaves it unverified.
 * @example judgeOrder({ id: '7', customerId: 1, status: 'processing' }, { kind: 'found', body: { status: 'pending' } }, listing) // wrong-state
 */
export function judgeOrder(expected: ExpectedOrder, byId: Fetched, listing: Listing): ReadBackVerdict {
  const listed = listing.kind === 'listed' ? (listing.statuses.get(expected.id) ?? []) : null;
  if (byId.kind === 'missing' || listed?.length === 0) return { kind: 'lost' };
  if (listed && listed.length > 1) return { kind: 'duplicated', count: listed.length };
  const acceptable = expected.unconfirmed === undefined ? [expected.status] : [expected.status, expected.unconfirmed];
  const wanted = acceptable.join(' or ');
  if (byId.kind === 'found' && !acceptable.includes(statusOf(byId.body))) {
    return { kind: 'wrong-state', expected: wanted, found: statusOf(byId.body), where: 'GET /orders/:id' };
  }
  if (listed && !acceptable.includes(listed[0]!)) {
    return {
      kind: 'wrong-state',
      expected: wanted,
      found: listed[0]!,
      where: `GET /orders?customerId=${expected.customerId}`,
    };
  }
  if (byId.kind === 'failed') return { kind: 'unverified', code: byId.code };
  if (listing.kind === 'failed') return { kind: 'unverified', code: listing.code };
  return { kind: 'verified' };
}

/**
 * Reads back every order the run created: each customer's listing once (all pages), then each order by id,
 * and judges each order on both.
 */
export async function readBackOrders(
  target: HttpTarget,
  orders: readonly ExpectedOrder[],
  options: ReadBackOptions = {},
): Promise<ReadBackResult> {
  const concurrency = options.concurrency ?? 32;
  const listings = new Map<number, Listing>();
  const customers = [...new Set(orders.map((o) => o.customerId))];
  await forEachConcurrently(customers, concurrency, async (customerId) => {
    listings.set(customerId, await listCustomerOrders(target, customerId, options));
  });
  const verdicts: { id: string; verdict: ReadBackVerdict }[] = [];
  await forEachConcurrently(orders, concurrency, async (order) => {
    const byId = await fetchForReadBack(target, `/orders/${order.id}`, options);
    verdicts.push({ id: order.id, verdict: judgeOrder(order, byId, listings.get(order.customerId)!) });
  });
  return summarizeVerdicts('orders', verdicts, { state: true, duplicates: true });
}
