import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Sql } from '../db/connect.ts';
import type { TransactionObserver } from '../db/transaction.ts';
import { poolGateOf, type PoolGateState } from '../db/pool-gate.ts';
import type { ReadCacheObserver } from '../cache/read-cache.ts';

/** One answered HTTP request, as the app saw it. */
export interface ObservedRequest {
  method: string;
  /** The route's pattern (`/accounts/:id`), `unmatched` for none. */
  route: string;
  status: number;
  ms: number;
  /** The problem+json code of an error answer. */
  code: string | undefined;
}

/** What happens in the process as it happens: for a live view (the dashboard), beside the counters. */
export interface MetricsListener {
  request?(r: ObservedRequest): void;
  commit?(label: string): void;
  retry?(label: string, reason: string): void;
  deadline?(label: string): void;
  cache?(cache: string, what: 'hit_local' | 'hit_shared' | 'miss' | 'load' | 'invalidation'): void;
  relayed?(outbox: string, count: number): void;
}

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Counts one answered request (the latency histogram) and tells the listeners. */
  observeRequest(r: ObservedRequest): void;
  /** Calls `listener` on every event from now on; returns its removal. */
  listen(listener: MetricsListener): () => void;
  /** Counts events a relay published from an outbox (`main`, `shard-0`, …). */
  countRelayed(outbox: string, count: number): void;
  /** The admission of every watched pool now. */
  poolStates(): PoolGateState[];
  transactionObserver: TransactionObserver;
  /** Observer hooks for a read cache, counted under its name. */
  cacheObserver(cache: string): ReadCacheObserver;
  /** Counts one load (a read of the source of truth) for a cache: single flight shows as loads < misses. */
  countCacheLoad(cache: string): void;
  /** Exposes the admission of these pools (in use, waiting, refused) by pool name; the list is read at each scrape. */
  watchPools(pools: () => readonly Sql[]): void;
  /** A gauge read at each scrape (its read failing leaves the last value). */
  gauge(name: string, help: string, read: () => Promise<number>): void;
}

/**
 * One registry per process: HTTP latency by route and status, transaction retries and deadline failures,
 * and the pool's connections as PostgreSQL sees them (pg_stat_activity, by this pool's application name).
 * @example const metrics = createMetrics({ sql, applicationName: 'stratum-123', poolMax: 10 });
 */
export function createMetrics(options: { sql?: Sql; applicationName: string; poolMax: number }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'stratum_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'stratum_tx_retries_total',
    help: 'Transactions run again after a serialization failure or deadlock',
    labelNames: ['label', 'sqlstate'] as const,
    registers: [registry],
  });
  const deadlines = new Counter({
    name: 'stratum_tx_deadline_exceeded_total',
    help: 'Transactions that ran out of time and committed nothing',
    labelNames: ['label'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'stratum_db_pool_max',
    help: 'Most connections the pool may open',
    registers: [registry],
    collect() {
      this.set(options.poolMax);
    },
  });
  const sql = options.sql;
  // A service without a database (quotes, the gateway) has no pools to count.
  if (sql)
    new Gauge({
      name: 'stratum_db_pool_connections',
      help: "Open connections of this process's pools by state: in_use (running or in a transaction) or idle",
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        const rows = await sql<{ in_use: number; idle: number }[]>`
        select count(*) filter (where state <> 'idle')::int as in_use, count(*) filter (where state = 'idle')::int as idle
        from pg_stat_activity where application_name like ${`${options.applicationName}%`} and pid <> pg_backend_pid()`.catch(
          () => [{ in_use: 0, idle: 0 }],
        );
        // The scrape's own connection is in use only for the scrape: count it as idle.
        this.set({ state: 'in_use' }, rows[0]!.in_use);
        this.set({ state: 'idle' }, rows[0]!.idle + 1);
      },
    });
  const cacheRequests = new Counter({
    name: 'stratum_cache_requests_total',
    help: 'Read cache lookups by cache and result (hit_local, hit_shared, miss)',
    labelNames: ['cache', 'result'] as const,
    registers: [registry],
  });
  const cacheLoads = new Counter({
    name: 'stratum_cache_loads_total',
    help: 'Reads of the source of truth on a cache miss (concurrent misses of one key share one load)',
    labelNames: ['cache'] as const,
    registers: [registry],
  });
  const cacheInvalidations = new Counter({
    name: 'stratum_cache_invalidations_total',
    help: 'Keys a read cache dropped as stale, by cache and source: local (this instance invalidated it) or shared (the shared tier told it)',
    labelNames: ['cache', 'source'] as const,
    registers: [registry],
  });
  const commits = new Counter({
    name: 'stratum_tx_commits_total',
    help: 'Transactions that committed',
    labelNames: ['label'] as const,
    registers: [registry],
  });
  const relayed = new Counter({
    name: 'stratum_relay_events_total',
    help: 'Events a relay published from an outbox to the broker, by outbox',
    labelNames: ['outbox'] as const,
    registers: [registry],
  });
  const listeners = new Set<MetricsListener>();
  const tell = (call: (l: MetricsListener) => void) => {
    for (const listener of listeners) call(listener);
  };
  const watched: Array<() => readonly Sql[]> = [];
  const gateStates = (): PoolGateState[] =>
    watched
      .flatMap((list) => list())
      .map((sql) => poolGateOf(sql)?.state())
      .filter((s): s is PoolGateState => s !== undefined);
  new Gauge({
    name: 'stratum_db_pool_admission',
    help: 'Callers of each pool by state: in_use (holding a connection) or waiting (for one, until their deadline)',
    labelNames: ['pool', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of gateStates()) {
        this.set({ pool: s.name, state: 'in_use' }, s.inUse);
        this.set({ pool: s.name, state: 'waiting' }, s.waiting);
      }
    },
  });
  new Gauge({
    name: 'stratum_db_pool_refused',
    help: 'Callers each pool refused (DB.POOL_EXHAUSTED: their deadline passed while they waited) since it opened',
    labelNames: ['pool'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of gateStates()) this.set({ pool: s.name }, s.refused);
    },
  });
  return {
    registry,
    httpDuration,
    observeRequest: (r) => {
      httpDuration.observe({ method: r.method, route: r.route, status: String(r.status) }, r.ms / 1000);
      if (listeners.size > 0) tell((l) => l.request?.(r));
    },
    listen: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    countRelayed: (outbox, count) => {
      relayed.inc({ outbox }, count);
      tell((l) => l.relayed?.(outbox, count));
    },
    poolStates: gateStates,
    watchPools: (pools) => {
      watched.push(pools);
    },
    gauge: (name, help, read) => {
      let last = 0;
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          last = await read().catch(() => last);
          this.set(last);
        },
      });
    },
    cacheObserver: (cache) => ({
      onHit: (tier) => {
        const result = tier === 'local' ? 'hit_local' : 'hit_shared';
        cacheRequests.inc({ cache, result });
        tell((l) => l.cache?.(cache, result));
      },
      onMiss: () => {
        cacheRequests.inc({ cache, result: 'miss' });
        tell((l) => l.cache?.(cache, 'miss'));
      },
      onInvalidation: () => {
        cacheInvalidations.inc({ cache, source: 'local' });
        tell((l) => l.cache?.(cache, 'invalidation'));
      },
      onSharedInvalidation: () => {
        cacheInvalidations.inc({ cache, source: 'shared' });
        tell((l) => l.cache?.(cache, 'invalidation'));
      },
    }),
    countCacheLoad: (cache) => {
      cacheLoads.inc({ cache });
      tell((l) => l.cache?.(cache, 'load'));
    },
    transactionObserver: {
      onRetry: (label, state) => {
        retries.inc({ label, sqlstate: state });
        tell((l) => l.retry?.(label, state));
      },
      onDeadlineExceeded: (label) => {
        deadlines.inc({ label });
        tell((l) => l.deadline?.(label));
      },
      onCommit: (label) => {
        commits.inc({ label });
        tell((l) => l.commit?.(label));
      },
    },
  };
}
