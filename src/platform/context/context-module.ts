import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { InvalidationRule, ReadCache } from '../cache/index.ts';
import type { ConnectTarget, Sql, TxSql } from '../db/connect.ts';
import type { TransactionFn } from '../db/transaction.ts';
import type { OutboxEvent } from '../messaging/broker.ts';
import type { Migration } from '../migrate/migration.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { EventType } from './events.ts';
import type { PlatformAccess } from './grants.ts';

/**
 * A bounded context as the composition root sees it: one value that says what the context brings (schema, role,
 * error codes, events) and how it starts. The root registers a list of these and knows nothing else of them.
 *
 * Adding a context is adding its folder with a `module.ts` exporting one of these, and one line in the root's list.
 * @example export const notesModule: ContextModule = { name: 'notes', migrations: notesMigrations, ... };
 */
export interface ContextModule<C = unknown> {
  /** Lower-case, unique: names its pool (`stratum-…-<name>`), its readiness entry and its role password variable. */
  readonly name: string;
  /** The context's migrations on the main database, in version order. */
  readonly migrations?: () => Migration[];
  /** Migrations of each shard database, when the context keeps its data on shards. */
  readonly shardMigrations?: () => Migration[];
  /** The PostgreSQL role the context's own migrations create; without one the context runs on the administrative pool. */
  readonly role?: ContextRole;
  /** Every error code the context throws, with its HTTP status (and Retry-After for codes worth retrying). */
  readonly errors: ErrorTable;
  /** The events the context publishes. */
  readonly events: readonly EventType[];
  /** Builds the context over the platform; called once, in list order, after the migrations ran. */
  start(platform: ContextPlatform<C>): Promise<StartedContext> | StartedContext;
}

export interface ContextRole {
  /** The role's name, as the context's migrations create it. */
  readonly name: string;
  /** Platform tables the role reaches; the migration run grants them (see grants.ts). */
  readonly uses: readonly PlatformAccess[];
  /** Also open a pool as this role on DATABASE_READ_URL, for reads that may lag. */
  readonly reads?: boolean;
}

export interface ErrorStatus {
  readonly status: number;
  /** Answers of this code carry `Retry-After` with this many seconds. */
  readonly retryAfterSeconds?: number;
}

export type ErrorTable = Readonly<Record<string, ErrorStatus>>;

/** What the root hands a context: its pools, transactions, caches and the ports of the other contexts. */
export interface ContextPlatform<C = unknown> {
  /** The process's configuration (the root's type: the platform does not know it). */
  readonly config: C;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The main database's administrative pool. */
  readonly admin: Sql;
  readonly target: ConnectTarget;
  readonly applicationName: string;
  /** This process's name in answers that say which instance served them (`servedBy`): INSTANCE_NAME, or a default. */
  readonly instance: string;
  /** The context's own pool: as its role when it has one, else the administrative pool. */
  readonly sql: Sql;
  /** The context's pool on DATABASE_READ_URL (as its role when it has one); absent without one. */
  readonly readSql: Sql | undefined;
  /** A deadline-bound transaction function over `sql` (the context's pool) or any other pool. */
  transactionOn(sql: Sql): TransactionFn;
  /** A read cache of this context, named `namespace`, with the Redis tier when REDIS_URL is set. */
  cache<T>(namespace: string): ReadCache<T>;
  /** Whether this process runs background work (relays, consumers): ROLE=all or worker. */
  readonly runsWorkers: boolean;
  /**
   * Another context's port, by the name it provides it under. Resolved when called (after every context
   * started), so two contexts may use each other's ports.
   */
  port<T>(name: string): T;
}

/** A consumer group of the context's: the root runs it on the configured broker when this process runs workers. */
export interface ConsumerSpec {
  readonly group: string;
  /** The events it handles; others are acknowledged unseen. */
  readonly events: readonly EventType[];
  /** Applies one event inside `tx`; the platform records it as processed in the same transaction. */
  handle(event: OutboxEvent, tx: TxSql): Promise<void>;
  /** Transactions on the database the effect and its processed-message row commit in. */
  readonly transaction: TransactionFn;
}

/** An outbox besides the main database's (a shard's) that the root relays to the broker. */
export interface OutboxSpec {
  readonly name: string;
  readonly target: ConnectTarget;
  /** The pool the outbox's writers use; the relay watches its wake-ups and cleans up. */
  readonly writers: Sql;
}

export interface StartedContext {
  /** The context's HTTP routes. */
  readonly routes?: (app: FastifyInstance) => void;
  /** Ports other contexts reach by name through `platform.port`. */
  readonly ports?: Readonly<Record<string, unknown>>;
  readonly consumers?: readonly ConsumerSpec[];
  /** Cached entries an event makes stale; followed when no shared cache tier tells the instances about writes. */
  readonly cacheRules?: readonly InvalidationRule[];
  /** Outboxes of other databases, relayed when this process runs workers. */
  readonly outboxes?: readonly OutboxSpec[];
  /** Pools request paths use besides the context's own: watched by the metrics and readiness. */
  readonly pools?: () => readonly Sql[];
  /** Databases besides the main one holding idempotency keys (shards): their expired keys are swept too. */
  readonly idempotencyStores?: () => readonly Sql[];
  /** What the dashboard shows of the context (read-only, a few cheap queries), under the context's name. */
  status?(): Promise<Record<string, unknown>>;
  /** What the data browser may read: the context's schemas on each database it keeps them in, on its own pools. */
  browse?(): BrowseSpec;
  /** Rejects with an AppError while the context cannot serve; its answer is shown under the context's name. */
  readiness?(): Promise<Record<string, unknown>>;
  close?(): Promise<void>;
}

export interface BrowseSpec {
  readonly schemas: readonly string[];
  /** `main` for the main database; a shard by its name (`shard-0`). */
  readonly databases: ReadonlyArray<{ readonly name: string; readonly sql: Sql }>;
}
