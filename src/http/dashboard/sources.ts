import type { Sql } from '../../platform/db/connect.ts';
import type { ClusterStatus } from '../../platform/db/replication-status.ts';
import type { DeadLetterStore } from '../../platform/messaging/broker.ts';
import type { Metrics } from '../../platform/observability/metrics.ts';

/** What the dashboard reads; the composition root fills it. Absent parts are shown as "not configured". */
export interface DashboardSources {
  metrics: Metrics;
  /** Every request pool (main, read, each context's, each shard's): the gauges by pool name come from `metrics`. */
  pools: () => readonly Sql[];
  /** Each database with an outbox (`main`, `shard-0`, ...): the pool to ask for its backlog. */
  outboxes: () => ReadonlyArray<{ name: string; sql: Sql }>;
  /** The broker's name (`postgres`, `rabbitmq`, `nats`, `redis`), its consumer groups and dead letters. */
  messaging: { broker: string; groups: readonly string[]; deadLetters: DeadLetterStore; relays: boolean };
  /** Whether the shared Redis cache tier is configured. */
  redis: boolean;
  /** The primary and its replicas as the primary sees them; undefined where replication is not visible. */
  cluster: () => Promise<ClusterStatus | undefined>;
  /** Each context's own panel (orders: its shards), by context name. */
  contexts: () => Promise<Record<string, unknown>>;
}
