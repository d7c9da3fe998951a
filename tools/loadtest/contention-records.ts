/**
 * What an orders-contention run recorded, and what it read from the databases afterwards: plain data, so the
 * judging (contention-checks.ts, contention-order-checks.ts) is pure and tested without a server.
 */

/**
 * What an answer says about a write: `acked` (2xx: it happened), `refused` (4xx: it did not), `unknown` (a 5xx,
 * a 503 included, or no answer: it may or may not have happened, and must not have half happened).
 */
export type Effect = 'acked' | 'refused' | 'unknown';

export function effectOf(status: number | null): Effect {
  if (status !== null && status >= 200 && status < 300) return 'acked';
  if (status !== null && status >= 400 && status < 500) return 'refused';
  return 'unknown';
}

export type OrderStatus = 'pending' | 'processing' | 'completed' | 'cancelled';

/** One request of the load, as answered. */
export interface AnswerRecord {
  route: string;
  /** null: no HTTP answer (a client timeout, a reset connection) or never sent. */
  status: number | null;
  /** The problem code of a failed answer, or the client's code when there was no answer. */
  code: string | null;
  retryAfter: boolean;
  /** From the scheduled start to the end of the body; null without an answer. */
  latencyMs: number | null;
}

export interface TransferRecord {
  /** The id the transfer was asked for. */
  from: string;
  toCustomer: number;
  effect: Effect;
  /** The new id, when acknowledged. */
  to?: string;
}

/** An order the run created and acknowledged, with every write it asked of it since. */
export interface LineageRecord {
  /** The order's notes: unique to it, kept by transfers, so its row is found wherever it went. */
  tag: string;
  originId: string;
  originCustomer: number;
  initialItems: number;
  transfers: TransferRecord[];
  /** Moves a GET learned from a 301 `movedTo`. */
  movesSeen: { from: string; to: string }[];
  changes: { to: OrderStatus; effect: Effect }[];
  /** Rows sent in each import; `imported` as acknowledged. */
  imports: { rows: number; effect: Effect; imported?: number }[];
}

/** A POST /orders that was not acknowledged: its order must not exist (refused) or exist at most once (unknown). */
export interface CreationRecord {
  tag: string;
  customerId: number;
  items: number;
  effect: Effect;
}

export interface CheckoutRecord {
  customerId: number;
  effect: Effect;
  /** From the 201 body or the problem's details; null when the answer named none. */
  sagaId: string | null;
}

export interface OrderRow {
  shardId: number;
  id: string;
  customerId: number;
  status: string;
  notes: string | null;
  sagaId: string | null;
  items: number;
  /** total_amount = the sum of its items' quantity × price. */
  totalMatches: boolean;
}

/** Items on a shard, by the order id they name. */
export interface ItemsRow {
  shardId: number;
  orderId: string;
  items: number;
}

export interface StockRow {
  shardId: number;
  productId: number;
  available: number;
  /** Sum of stock_reservations of the product on that shard. */
  reserved: number;
}

export interface SagaRow {
  id: string;
  status: string;
}

export interface ChargeRow {
  key: string;
  status: string;
}

/** What must reach zero after the load. */
export interface SettleCounts {
  /** pg_prepared_xacts rows of each shard's database, by shard id. */
  prepared: Record<number, number>;
  /** sharding.sagas in running or compensating. */
  unfinishedSagas: number;
  /** sharding.decisions whose gid no prepared branch on any shard carries. */
  decisionsWithoutBranches: number;
}

/** The databases after the load, restricted to the run's customers, products and sagas. */
export interface ContentionSnapshot {
  /** The shard of every bucket, from sharding.buckets. */
  shardOfBucket: readonly number[];
  shardIds: number[];
  orders: OrderRow[];
  items: ItemsRow[];
  stock: StockRow[];
  /** Saga ids with stock reservations, on any shard. */
  reservedSagas: string[];
  sagas: SagaRow[];
  charges: ChargeRow[];
}

/** One check's verdict: `problems` empty means it held. */
export interface Check {
  name: string;
  /** What held, in numbers, e.g. "120 orders". */
  summary: string;
  problems: string[];
}
