import {
  effectOf,
  type CheckoutRecord,
  type CreationRecord,
  type LineageRecord,
  type OrderStatus,
} from './contention-records.ts';

/**
 * The orders-contention run's bookkeeping: what each answer says happened. An order acknowledged by a 201
 * becomes a lineage that follows it through its transfers (each gives it a new id); the run addresses its
 * `currentId`. A transfer of unknown outcome makes the lineage `uncertain` until a read says where it is, so no
 * write is asked of an id the run does not know to be current.
 */
export interface Lineage extends LineageRecord {
  currentId: string;
  /** null while only a 301 said where it went, not to whom. */
  currentCustomer: number | null;
  /** The status last acknowledged or reported, for choosing the next change. */
  status: OrderStatus;
  uncertain: boolean;
  /** A read to settle `uncertain` is in flight. */
  resolving: boolean;
}

const STATUSES: readonly string[] = ['pending', 'processing', 'completed', 'cancelled'];
const isStatus = (s: unknown): s is OrderStatus => typeof s === 'string' && STATUSES.includes(s);

interface OrderBody {
  id: number;
  customerId: number;
  status: string;
  items: unknown[];
}

export function isOrderBody(body: unknown): body is OrderBody {
  const b = body as Partial<OrderBody> | null | undefined;
  return typeof b?.id === 'number' && typeof b.customerId === 'number' && isStatus(b.status) && Array.isArray(b.items);
}

export function createLedger() {
  const lineages: Lineage[] = [];
  const creations: CreationRecord[] = [];
  const checkouts: CheckoutRecord[] = [];

  return {
    lineages,
    creations,
    checkouts,

    /** A POST /orders answered: a 201 with the order starts a lineage; anything else is a creation to judge by its tag. */
    onCreated(
      tag: string,
      customerId: number,
      items: number,
      status: number | null,
      body: unknown,
    ): Lineage | undefined {
      const effect = effectOf(status);
      if (effect === 'acked' && isOrderBody(body) && body.customerId === customerId) {
        const lineage: Lineage = {
          tag,
          originId: String(body.id),
          originCustomer: customerId,
          initialItems: body.items.length,
          transfers: [],
          movesSeen: [],
          changes: [],
          imports: [],
          currentId: String(body.id),
          currentCustomer: customerId,
          status: 'pending',
          uncertain: false,
          resolving: false,
        };
        lineages.push(lineage);
        return lineage;
      }
      // A 201 the run cannot read is judged as unknown: the order may exist once, untouched.
      creations.push({ tag, customerId, items, effect: effect === 'acked' ? 'unknown' : effect });
      return undefined;
    },

    onTransferred(lineage: Lineage, from: string, toCustomer: number, status: number | null, body: unknown): void {
      let effect = effectOf(status);
      if (effect === 'acked' && !(isOrderBody(body) && body.customerId === toCustomer)) effect = 'unknown';
      if (effect !== 'acked') {
        lineage.transfers.push({ from, toCustomer, effect });
        if (effect === 'unknown' && lineage.currentId === from) lineage.uncertain = true;
        return;
      }
      const to = String((body as OrderBody).id);
      lineage.transfers.push({ from, toCustomer, effect, to });
      if (lineage.currentId === from) {
        lineage.currentId = to;
        lineage.currentCustomer = toCustomer;
      } else if (lineage.currentId === to) {
        // A read's 301 got here first; this answer says to whom it went.
        lineage.currentCustomer = toCustomer;
        lineage.uncertain = false;
      }
    },

    /** GET /orders/:id of a lineage: a 301 is a move seen; a 200 of the current id says whose it is now. */
    onRead(lineage: Lineage, id: string, status: number | null, body: unknown): void {
      const movedTo = (body as { movedTo?: unknown } | null | undefined)?.movedTo;
      if (status === 301 && typeof movedTo === 'number') {
        if (!lineage.movesSeen.some((m) => m.from === id)) lineage.movesSeen.push({ from: id, to: String(movedTo) });
        if (lineage.currentId === id) {
          const acked = lineage.transfers.find((t) => t.effect === 'acked' && t.to === String(movedTo));
          lineage.currentId = String(movedTo);
          lineage.currentCustomer = acked?.toCustomer ?? null;
          lineage.uncertain = acked === undefined;
        }
      } else if (status === 200 && isOrderBody(body) && String(body.id) === id && lineage.currentId === id) {
        lineage.currentCustomer = body.customerId;
        lineage.status = body.status as OrderStatus;
        lineage.uncertain = false;
      }
    },

    onChanged(lineage: Lineage, to: OrderStatus, status: number | null, body: unknown): void {
      const effect = effectOf(status);
      lineage.changes.push({ to, effect });
      if (effect === 'acked') lineage.status = to;
      const from = (body as { details?: { from?: unknown } } | null | undefined)?.details?.from;
      if (status === 409 && isStatus(from)) lineage.status = from;
    },

    onImported(lineage: Lineage, rows: number, status: number | null, body: unknown): void {
      const imported = (body as { imported?: unknown } | null | undefined)?.imported;
      const effect = effectOf(status);
      if (effect === 'acked' && typeof imported === 'number') lineage.imports.push({ rows, effect, imported });
      else lineage.imports.push({ rows, effect: effect === 'acked' ? 'unknown' : effect });
    },

    onCheckout(customerId: number, status: number | null, body: unknown): void {
      const b = body as { sagaId?: unknown; details?: { sagaId?: unknown } } | null | undefined;
      const sagaId =
        typeof b?.sagaId === 'string' ? b.sagaId : typeof b?.details?.sagaId === 'string' ? b.details.sagaId : null;
      checkouts.push({ customerId, effect: effectOf(status), sagaId });
    },

    /** Every id a lineage was known by: items naming a moved one, anywhere, are orphans. */
    knownIds(): string[] {
      return lineages.flatMap((l) => [
        l.originId,
        ...l.transfers.flatMap((t) => (t.to ? [t.to] : [])),
        ...l.movesSeen.map((m) => m.to),
      ]);
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;
