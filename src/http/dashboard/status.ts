import { createPool, primaryState, type ConnectTarget, type Sql } from '../../platform/db/connect.ts';
import { checkDatabaseReadiness, describeReadServer } from '../../platform/db/replication-status.ts';
import type { Broker } from '../../platform/messaging/broker.ts';

/** What the dashboard reads besides the metrics; the composition root fills it. Absent parts show as not configured. */
export interface DashboardSources {
  /** The main database's administrative pool: only its primary state is read (in memory). */
  admin: Sql;
  applicationName: string;
  /** Each database with an outbox (`main`, `shard-0`, …), for the dashboard's own connection to it. */
  outboxes: () => ReadonlyArray<{ name: string; target: ConnectTarget }>;
  broker: Broker;
  /** The consumer groups this process runs. */
  groups: readonly string[];
  /** Whether this process runs the relays and consumers (ROLE=all or worker). */
  runsWorkers: boolean;
  /** Whether the shared cache tier (Redis) is configured. */
  redis: boolean;
  /** The read pool (DATABASE_READ_URL), when there is one. */
  reads: Sql | undefined;
  /** Each context's own status, by context name; a context without one is left out. */
  contexts: () => Array<{ name: string; status: () => Promise<Record<string, unknown>> }>;
}

/** A part that did not answer in time or failed: shown as such, never as zeros. */
export interface Unanswered {
  error: string;
}

export interface OutboxStatus {
  name: string;
  backlog: number;
  oldestMs: number | null;
}

export interface Status {
  t: number;
  messaging: {
    broker: string;
    relays: boolean;
    outboxes: Array<OutboxStatus | (Unanswered & { name: string })>;
    groups: Array<{ group: string; lag: number | null; deadLetters: number | null }>;
    lagReported: boolean;
  };
  cache: { redis: boolean };
  cluster:
    | { configured: false }
    | {
        configured: true;
        primary: string | null;
        replicas: Array<{ name: string; lagBytes: number | null; replayLagMs: number | null; state: string | null }>;
        reads: { host: string; standby: boolean; replayDelayMs: number | null } | Unanswered | null;
        error?: string;
        lastFailover: { at: number; from: string; to: string } | null;
      };
  contexts: Record<string, Record<string, unknown> | Unanswered>;
}

export interface StatusReader {
  /** The status, read again when the last read is older than `maxAgeMs`; concurrent callers share one read. */
  read(maxAgeMs: number): Promise<Status>;
  close(): Promise<void>;
}

/** Each part gets this long; a slower part shows as not answering. */
const PART_MS = 2000;
/** Dead letters counted per group at most. */
const DEAD_LETTER_LIMIT = 1000;

const within = <T>(promise: Promise<T>, ms: number): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Reads what the dashboard shows of the databases and the broker: outbox backlogs, consumer lag, dead letters,
 * the cluster, each context's status. Its queries run on connections of its own (one per outbox database, opened
 * at first read, closed when idle), each part bounded in time, so a saturated request pool neither slows the
 * dashboard nor is slowed by it. Also watches the main pool's primary: a change is the last failover.
 * @example const reader = createStatusReader(sources); const status = await reader.read(5000);
 */
export function createStatusReader(sources: DashboardSources): StatusReader {
  const pools = new Map<string, Sql>();
  const poolOf = (name: string, target: ConnectTarget) => {
    let pool = pools.get(name);
    if (!pool) {
      pool = createPool(target, {
        max: 1,
        applicationName: `${sources.applicationName}-dashboard`,
        name: `dashboard-${name}`,
        connectTimeoutSeconds: 2,
        idleTimeoutSeconds: 30,
        statementTimeoutMs: PART_MS,
        acquireWaitMs: PART_MS,
      });
      pools.set(name, pool);
    }
    return pool;
  };
  let primary: string | undefined;
  let lastFailover: { at: number; from: string; to: string } | null = null;
  const watchPrimary = (now: string | undefined) => {
    if (now === undefined) return;
    if (primary !== undefined && now !== primary) lastFailover = { at: Date.now(), from: primary, to: now };
    primary = now;
  };
  const watcher = setInterval(() => watchPrimary(primaryState(sources.admin)?.primary), 500);
  watcher.unref();

  let last: { at: number; status: Promise<Status> } | undefined;

  async function outboxStatus(name: string, target: ConnectTarget) {
    try {
      const [row] = await within(
        poolOf(name, target)<{ backlog: number; oldest_ms: number | null }[]>`
          select count(*)::int as backlog,
            (extract(epoch from clock_timestamp() - min(created_at)) * 1000)::float8 as oldest_ms
          from messaging.outbox where sent_at is null`,
        PART_MS,
      );
      return { name, backlog: row!.backlog, oldestMs: row!.oldest_ms === null ? null : Math.round(row!.oldest_ms) };
    } catch (error) {
      return { name, error: message(error) };
    }
  }

  async function readStatus(): Promise<Status> {
    const outboxes = sources.outboxes();
    const main = outboxes.find((o) => o.name === 'main');
    const mainPool = main ? poolOf(main.name, main.target) : undefined;
    const lag =
      sources.broker.consumerLag && mainPool
        ? within(sources.broker.consumerLag(sources.broker.name === 'postgres' ? mainPool : undefined), PART_MS)
        : undefined;
    const [outboxStates, lags, deadLetters, cluster, reads, contexts] = await Promise.all([
      Promise.all(outboxes.map((o) => outboxStatus(o.name, o.target))),
      lag?.catch(() => undefined),
      Promise.all(
        sources.groups.map((group) =>
          within(sources.broker.deadLetters.list(group, DEAD_LETTER_LIMIT), PART_MS).then(
            (list) => list.length,
            () => null,
          ),
        ),
      ),
      mainPool
        ? within(checkDatabaseReadiness(mainPool), PART_MS).catch((error: unknown) => ({ error: message(error) }))
        : undefined,
      sources.reads
        ? within(describeReadServer(sources.reads), PART_MS).catch((error: unknown) => ({ error: message(error) }))
        : null,
      Promise.all(
        sources.contexts().map(async (c) => {
          try {
            return [c.name, await within(c.status(), PART_MS)] as const;
          } catch (error) {
            return [c.name, { error: message(error) }] as const;
          }
        }),
      ),
    ]);
    const clusterOf = (): Status['cluster'] => {
      const found = cluster && 'cluster' in cluster ? cluster.cluster : undefined;
      if (found) watchPrimary(found.primary);
      const failed = cluster && 'error' in cluster ? cluster.error : undefined;
      if (!found && !failed && !reads && primaryState(sources.admin) === undefined) return { configured: false };
      return {
        configured: true,
        primary: found?.primary ?? primaryState(sources.admin)?.primary ?? null,
        replicas: (found?.replicas ?? []).map((r) => ({
          name: r.name,
          lagBytes: r.lagBytes === null ? null : Number(r.lagBytes),
          replayLagMs: r.replayLagMs === null ? null : Number(r.replayLagMs),
          state: r.state,
        })),
        reads,
        ...(failed ? { error: failed } : {}),
        lastFailover,
      };
    };
    return {
      t: Date.now(),
      messaging: {
        broker: sources.broker.name,
        relays: sources.runsWorkers,
        outboxes: outboxStates,
        groups: sources.groups.map((group, i) => ({ group, lag: lags?.[group] ?? null, deadLetters: deadLetters[i]! })),
        lagReported: lags !== undefined,
      },
      cache: { redis: sources.redis },
      cluster: clusterOf(),
      contexts: Object.fromEntries(contexts),
    };
  }

  return {
    read(maxAgeMs) {
      if (!last || Date.now() - last.at > maxAgeMs) {
        const status = readStatus();
        last = { at: Date.now(), status };
        // A failed read is not kept: the next caller tries again.
        status.catch(() => {
          if (last?.status === status) last = undefined;
        });
      }
      return last.status;
    },
    async close() {
      clearInterval(watcher);
      await Promise.all([...pools.values()].map((p) => p.end({ timeout: 2 })));
      pools.clear();
    },
  };
}
