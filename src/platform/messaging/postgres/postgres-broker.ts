import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { partitionOf, type Broker, type DeadLetter, type OutboxEvent, type Subscription } from '../broker.ts';
import { followLog } from './log-follower.ts';
import { appendFromOutbox } from './append-from-outbox.ts';
import {
  createLogNews,
  LOG_CHANNEL,
  logLockName,
  logNotice,
  parseLogNotice,
  parseRebalanceNotice,
  rebalanceNotice,
} from './log-news.ts';
import { subscribeToLog, type LogSubscription } from './postgres-subscription.ts';

export interface PostgresBrokerOptions {
  sql: Sql;
  /** Separates brokers sharing one database (tests, several deployments). */
  namespace?: string;
  partitions?: number;
  /** How long a consumer's lease of a partition lasts without renewal (a dead consumer's partitions move after it). */
  leaseMs?: number;
  pollMs?: number;
  batchSize?: number;
  /** End `sql` on close (the broker was given a pool of its own). */
  ownsPool?: boolean;
  /** Log rows every group has passed are deleted; with no group at all, rows older than this. Default 24 h. */
  retentionMs?: number;
  /** How often publishing also trims the log. Default 60 s. */
  trimEveryMs?: number;
  log?: (message: string, error?: unknown) => void;
}

interface DeadLetterRow {
  id: string;
  group_name: string;
  partition: number;
  event: OutboxEvent;
  error: string;
  attempts: number;
  dead_at: Date;
}

const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id,
  group: r.group_name,
  event: r.event,
  error: r.error,
  attempts: r.attempts,
  deadAt: r.dead_at.toISOString(),
});

/**
 * The embedded default broker: a partitioned log in PostgreSQL (messaging.log), positions per group and
 * partition with leases for competing consumers, NOTIFY to wake consumers, and dead letters in a table.
 * Publishers take turns on an advisory lock, so log order is commit order and no reader skips a late commit.
 * @example const broker = await createPostgresBroker({ sql }); await broker.publish(events);
 */
export async function createPostgresBroker(
  options: PostgresBrokerOptions,
): Promise<Broker & { trim(): Promise<number> }> {
  const { sql } = options;
  const namespace = options.namespace ?? 'stratum';
  const partitions = options.partitions ?? 8;
  const log = options.log ?? (() => {});
  const subscriptions = new Set<LogSubscription>();
  const followers = new Set<Subscription>();
  const news = createLogNews(partitions);
  const rebalancers = new Map<string, Set<() => void>>();
  // LISTEN only once something subscribes: a publishing-only broker needs no connection of its own.
  let listener: Promise<{ unlisten(): Promise<void> }> | undefined;
  const listen = () =>
    (listener ??= sql.listen(
      LOG_CHANNEL,
      (payload) => {
        const group = parseRebalanceNotice(payload, namespace);
        if (group !== null) {
          for (const rebalance of rebalancers.get(group) ?? []) rebalance();
          return;
        }
        const named = parseLogNotice(payload, namespace);
        if (named !== null) news.arrived(named);
      },
      () => news.wakeAll(),
    )); // (re)connected: notices may have been missed meanwhile

  const retentionMs = options.retentionMs ?? 24 * 3600_000;
  const trimEveryMs = options.trimEveryMs ?? 60_000;
  let lastTrim = Date.now();

  /** Deletes, per partition, what every group has consumed (and, while no group exists, what is older than the retention). */
  async function trim(): Promise<number> {
    const result = await sql`
      delete from messaging.log l
      where l.namespace = ${namespace}
        and case when exists (select 1 from messaging.positions p where p.namespace = ${namespace})
          then l.seq <= (select min(p.position) from messaging.positions p where p.namespace = ${namespace} and p.partition = l.partition)
          else (l.event->>'createdAt')::timestamptz < now() - make_interval(secs => ${retentionMs / 1000})
        end`;
    return result.count;
  }

  async function trimNowAndThen(): Promise<void> {
    if (Date.now() - lastTrim > trimEveryMs) {
      lastTrim = Date.now();
      await trim().catch((error) => log('trimming the message log failed', error));
    }
  }

  async function append(events: readonly OutboxEvent[], targetGroup: string | null): Promise<void> {
    await trimNowAndThen();
    if (events.length === 0) return;
    const eventPartitions = events.map((e) => partitionOf(e.key, partitions));
    // One statement, one transaction: the lock is taken before any row gets its seq (every row joins it) and
    // held until the commit, so rows commit in seq order; the NOTIFY goes out with the commit.
    await sql`
      with locked as materialized (select pg_advisory_xact_lock(hashtext(${logLockName(namespace)}))),
        notified as materialized (select pg_notify(${LOG_CHANNEL}, ${logNotice(namespace, eventPartitions)}))
      insert into messaging.log (namespace, partition, target_group, event)
      select ${namespace}, p, ${targetGroup}, e::jsonb
      from locked, notified, unnest(${eventPartitions}::int[], ${events.map((e) => JSON.stringify(e))}::text[]) with ordinality as t(p, e, n)
      order by n`;
  }

  async function consumerLag(on: Sql = sql): Promise<Record<string, number>> {
    const rows = await on<{ group: string; lag: number }[]>`
      select p.group_name as group, sum(behind.n)::int as lag
      from messaging.positions p
      cross join lateral (
        select count(*) as n from (
          select 1 from messaging.log l
          where l.namespace = p.namespace and l.partition = p.partition and l.seq > p.position
            and (l.target_group is null or l.target_group = p.group_name)
          limit 10000) unconsumed) behind
      where p.namespace = ${namespace}
      group by p.group_name order by p.group_name`;
    return Object.fromEntries(rows.map((r) => [r.group, r.lag]));
  }

  return {
    name: 'postgres',
    partitions,
    trim,
    consumerLag,
    publish: (events) => append(events, null),
    outboxAppender: {
      sql,
      appendFromOutbox(db, claimed) {
        void trimNowAndThen(); // on the pool, beside the relay's transaction
        return appendFromOutbox(db, { namespace, partitions }, claimed);
      },
    },
    async subscribe(group, subscribeOptions) {
      await listen();
      const onRebalance = (rebalance: () => void) => {
        const set = rebalancers.get(group) ?? rebalancers.set(group, new Set()).get(group)!;
        set.add(rebalance);
        return () => {
          set.delete(rebalance);
        };
      };
      const askToRebalance = async () => {
        await sql`select pg_notify(${LOG_CHANNEL}, ${rebalanceNotice(namespace, group)})`;
      };
      const subscription = await subscribeToLog(
        {
          sql,
          namespace,
          group,
          partitions,
          consumerId: randomUUID(),
          leaseMs: options.leaseMs ?? 10_000,
          pollMs: options.pollMs ?? 500,
          batchSize: options.batchSize ?? 500,
          news,
          onRebalance,
          askToRebalance,
          log,
        },
        subscribeOptions,
      );
      subscriptions.add(subscription);
      return {
        async stop() {
          subscriptions.delete(subscription);
          await subscription.stop();
        },
      };
    },
    async follow(listener) {
      await listen();
      const follower = await followLog(
        { sql, namespace, news, pollMs: options.pollMs ?? 500, batchSize: options.batchSize ?? 500, log },
        listener,
      );
      followers.add(follower);
      return {
        async stop() {
          followers.delete(follower);
          await follower.stop();
        },
      };
    },
    deadLetters: {
      async list(group, limit) {
        const rows = await sql<DeadLetterRow[]>`select * from messaging.dead_letters
          where namespace = ${namespace} and group_name = ${group} order by dead_at, id limit ${limit}`;
        return rows.map(toDeadLetter);
      },
      async get(group, id) {
        const [row] = await sql<
          DeadLetterRow[]
        >`select * from messaging.dead_letters where namespace = ${namespace} and group_name = ${group} and id = ${id}`;
        return row ? toDeadLetter(row) : undefined;
      },
      async replay(group, id) {
        return (await sql.begin(async (tx) => {
          const [row] = await tx<DeadLetterRow[]>`delete from messaging.dead_letters
            where namespace = ${namespace} and group_name = ${group} and id = ${id} returning *`;
          if (!row) return false;
          await tx`select pg_advisory_xact_lock(hashtext(${logLockName(namespace)}))`;
          await tx`insert into messaging.log (namespace, partition, target_group, event) values (${namespace}, ${row.partition}, ${group}, ${tx.json(row.event as never)})`;
          await tx`select pg_notify(${LOG_CHANNEL}, ${logNotice(namespace, [row.partition])})`;
          return true;
        })) as boolean;
      },
      async drop(group, id) {
        const rows =
          await sql`delete from messaging.dead_letters where namespace = ${namespace} and group_name = ${group} and id = ${id} returning 1`;
        return rows.length > 0;
      },
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.abandon()));
      subscriptions.clear();
      await Promise.all([...followers].map((f) => f.stop()));
      followers.clear();
      news.wakeAll();
      await (await listener?.catch(() => undefined))?.unlisten().catch(() => {});
      if (options.ownsPool) await sql.end({ timeout: 1 });
    },
  };
}
