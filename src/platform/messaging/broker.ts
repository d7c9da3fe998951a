import type postgres from 'postgres';
import type { Db, Sql } from '../db/connect.ts';

/**
 * The one port every broker adapter implements (postgres, rabbitmq, nats, redis; shaped so a Kafka adapter fits:
 * a partitioned log with consumer groups).
 *
 * The contract:
 * - Events are routed to one of `partitions` partitions by a hash of their key (`partitionOf`), so events of one
 *   key stay in one partition, in publish order.
 * - Every consumer group gets every event. Within a group, consumers compete: each partition is served by at most
 *   one consumer at a time, which hands its events to the handler one after another, in order.
 * - Delivery is at least once: an event whose handler did not finish (a crash, a lost connection) is delivered
 *   again, to this or another consumer of the group. Exactly-once *effects* are the consumer runner's job
 *   (processed_messages), not the adapter's.
 * - A handler failure is retried in place (the partition waits, keeping order) with the runner's backoff; after
 *   `maxAttempts` the runner moves the event to the group's dead letters and the partition goes on.
 * - Besides groups, any number of followers (`follow`) each hear every event published after they started, at
 *   most once and without acknowledging anything, and are told when events may have been missed. A follower
 *   leaves nothing behind on the broker once it stops or its process dies (decision 0017).
 */
export interface OutboxEvent {
  /** Unique (UUID); the deduplication key of consumers. */
  id: string;
  type: string;
  /** The ordering key, e.g. an account or customer id. */
  key: string;
  payload: unknown;
  headers: Record<string, string>;
  /** ISO 8601, when the event was written to the outbox (commit time of the business write, nearly). */
  createdAt: string;
}

export interface Delivery {
  event: OutboxEvent;
  partition: number;
}

/** What the runner tells the adapter once it is done with a delivery. */
export type Outcome = { kind: 'ack' } | { kind: 'dead-letter'; error: string; attempts: number };

export interface SubscribeOptions {
  /** Called for each event of a claimed partition, one at a time per partition; resolves with what to do. */
  handle: (delivery: Delivery) => Promise<Outcome>;
  /**
   * Optional: the same for consecutive deliveries of ONE partition, in order, one outcome per delivery. Adapters
   * that read several events at once call it so the runner can apply them in one transaction.
   */
  handleBatch?: (deliveries: Delivery[]) => Promise<Outcome[]>;
  /** Partitions this consumer serves at most at once. */
  maxPartitions?: number;
}

export interface Subscription {
  /** Stops taking events, lets the ones in hand finish (or releases them unacknowledged), then resolves. */
  stop(): Promise<void>;
}

/** What a follower hears: every event published after it started (replays of dead letters excepted). */
export interface FollowOptions {
  /** Events as they arrive, in publish order per partition. Called one call at a time; must not throw. */
  onEvents(events: OutboxEvent[]): void;
  /** Events may have been missed (the broker was unreachable for a while): what was derived from them is suspect. */
  onGap(): void;
}

export interface DeadLetter {
  id: string;
  group: string;
  event: OutboxEvent;
  error: string;
  attempts: number;
  deadAt: string;
}

export interface DeadLetterStore {
  list(group: string, limit: number): Promise<DeadLetter[]>;
  get(group: string, id: string): Promise<DeadLetter | undefined>;
  /** Publishes the event again to this group only (other groups already have it) and removes the dead letter. */
  replay(group: string, id: string): Promise<boolean>;
  drop(group: string, id: string): Promise<boolean>;
}

/** An outbox row the relay has claimed and marked sent, in seq order. */
export interface ClaimedOutboxRow {
  seq: string;
  key: string;
}

/** A row the append returns. */
export interface AppendedEvent {
  event: OutboxEvent;
}

/**
 * What a broker whose log is a table in PostgreSQL offers the relay of the same database: the claimed rows go
 * into the log by the relay's own transaction, so the mark and the publish commit together, and the events never
 * travel to the process and back.
 */
export interface OutboxAppender {
  /** The pool of the log's database; the relay appends this way only when it is the relay's own pool. */
  readonly sql: Sql;
  /**
   * The statement that appends the claimed rows, in order, built on `db` (a connection in the relay's open
   * transaction) and not sent yet: the relay sends it, then its COMMIT right behind it. Its rows are the events
   * as appended.
   */
  appendFromOutbox(db: Db, claimed: readonly ClaimedOutboxRow[]): postgres.PendingQuery<AppendedEvent[]>;
}

export interface Broker {
  readonly name: 'postgres' | 'rabbitmq' | 'nats' | 'redis';
  readonly partitions: number;
  /** Publishes in order; resolves only once the broker has durably accepted every event. */
  publish(events: readonly OutboxEvent[]): Promise<void>;
  /** Only a broker whose log lives in PostgreSQL: see OutboxAppender. */
  readonly outboxAppender?: OutboxAppender;
  subscribe(group: string, options: SubscribeOptions): Promise<Subscription>;
  /** Hears every event from now on, in this process only: no group, no acknowledgement, no redelivery. */
  follow(options: FollowOptions): Promise<Subscription>;
  readonly deadLetters: DeadLetterStore;
  /**
   * Events each consumer group has not consumed yet (counted up to 10,000 per partition), where the broker can
   * tell cheaply; `on`: the pool to ask, for a broker whose log is in PostgreSQL (default: its own).
   */
  consumerLag?(on?: Sql): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** The partition of a key: FNV-1a, stable across processes and languages. */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}
