import type { RequestPlan } from './http-target.ts';
import type { Random } from './random.ts';
import { readBackOrders } from './read-back-orders.ts';
import { pickWeighted, type Mix, type Scenario, type ScenarioSettings } from './scenario.ts';

export const ORDERS_MIX: Mix = [
  ['read', 40],
  ['create', 25],
  ['change', 25],
  ['list', 10],
];

/** The next status of an order on its happy path; cancellation is never asked for. */
export const NEXT_STATUS: Readonly<Record<string, string | undefined>> = {
  pending: 'processing',
  processing: 'completed',
};

/** An order as the run knows it. */
interface TrackedOrder {
  id: string;
  customerId: number;
  /** The status of the last 201 or 200 the run got for it. */
  status: string;
  /** Set when a change failed: the status it may or may not have reached. The order is not changed again. */
  unconfirmed?: string;
}

function isOrderOf(
  body: unknown,
  check: { id?: string; customerId?: number; status?: string },
): body is { id: number; customerId: number; status: string } {
  const b = body as { id?: unknown; customerId?: unknown; status?: unknown; items?: unknown } | null | undefined;
  return (
    typeof b?.id === 'number' &&
    typeof b.customerId === 'number' &&
    typeof b.status === 'string' &&
    Array.isArray(b.items) &&
    (check.id === undefined || String(b.id) === check.id) &&
    (check.customerId === undefined || b.customerId === check.customerId) &&
    (check.status === undefined || b.status === check.status)
  );
}

function isListingOf(body: unknown, customerId: number): boolean {
  const b = body as { items?: unknown } | null | undefined;
  return (
    Array.isArray(b?.items) && b.items.every((item: { customerId?: unknown } | null) => item?.customerId === customerId)
  );
}

/**
 * About 40% reads of orders the run created, 25% creations for random customers (one or two items), 25% status
 * changes (pending → processing → completed) and 10% listings of a random customer's orders. At most one change
 * of an order is in flight, so each is expected to answer 200. A read or change with nothing to address yet
 * (no order created, or none that can move) becomes a creation.
 *
 * Every arrival draws the same four numbers, so a seed fixes the kinds drawn and the customers and items of
 * creations and listings; which created order a read or change picks (and whether one falls back to a
 * creation) depends on which answers have come back.
 */
export function ordersMixed(settings: ScenarioSettings): Scenario {
  const orders: TrackedOrder[] = [];
  // Orders that can take a change now: pending or processing, none in flight, no unconfirmed change.
  const changeable: TrackedOrder[] = [];

  const create = (a: number, b: number, c: number): RequestPlan => {
    const customerId = 1 + Math.floor(a * settings.customers);
    const productId = 1 + Math.floor(c * 1_000);
    const item = (product: number) => ({
      productId: product,
      quantity: 1 + (Math.floor(b * 10_000) % 5),
      price: `${1 + (product % 50)}.${String(product % 100).padStart(2, '0')}`,
    });
    const items = b < 0.5 ? [item(productId)] : [item(productId), item(1 + (Math.floor(c * 1_000_000) % 1_000))];
    return {
      kind: 'create',
      method: 'POST',
      path: '/orders',
      body: { customerId, items },
      expectStatus: 201,
      accept: (body) => {
        if (!isOrderOf(body, { customerId, status: 'pending' })) return false;
        const order: TrackedOrder = { id: String(body.id), customerId, status: 'pending' };
        orders.push(order);
        changeable.push(order);
        return true;
      },
    };
  };

  const change = (a: number): RequestPlan => {
    // Take the order out of `changeable` while its change is in flight: no second change can pick it.
    const i = Math.floor(a * changeable.length);
    const order = changeable[i]!;
    changeable[i] = changeable.at(-1)!;
    changeable.pop();
    const to = NEXT_STATUS[order.status]!;
    return {
      kind: 'change',
      method: 'PATCH',
      path: `/orders/${order.id}`,
      body: { status: to },
      expectStatus: 200,
      accept: (body) => isOrderOf(body, { id: order.id, status: to }),
      onSettled: (outcome) => {
        if (outcome === null) {
          changeable.push(order); // never sent: nothing changed
        } else if (outcome.ok) {
          order.status = to;
          if (NEXT_STATUS[to]) changeable.push(order);
        } else {
          order.unconfirmed = to;
        }
      },
    };
  };

  const read = (a: number): RequestPlan => {
    const order = orders[Math.floor(a * orders.length)]!;
    return {
      kind: 'read',
      method: 'GET',
      path: `/orders/${order.id}`,
      expectStatus: 200,
      accept: (body) => isOrderOf(body, { id: order.id, customerId: order.customerId }),
    };
  };

  const list = (a: number): RequestPlan => {
    const customerId = 1 + Math.floor(a * settings.customers);
    return {
      kind: 'list',
      method: 'GET',
      path: `/orders?customerId=${customerId}&limit=50`,
      expectStatus: 200,
      accept: (body) => isListingOf(body, customerId),
    };
  };

  return {
    name: 'orders-mixed',
    kinds: ORDERS_MIX.map(([kind]) => kind),
    nextRequest: (random: Random) => {
      const [roll, a, b, c] = [random(), random(), random(), random()];
      const kind = pickWeighted(ORDERS_MIX, roll);
      if (kind === 'read' && orders.length > 0) return read(a);
      if (kind === 'change' && changeable.length > 0) return change(a);
      if (kind === 'list') return list(a);
      return create(a, b, c);
    },
    readBack: (target) =>
      readBackOrders(
        target,
        orders.map(({ id, customerId, status, unconfirmed }) => ({
          id,
          customerId,
          status,
          ...(unconfirmed === undefined ? {} : { unconfirmed }),
        })),
      ),
  };
}
