import type { Sql } from '../../db/connect.ts';
import type { Outcome, OutboxEvent, SubscribeOptions, Subscription } from '../broker.ts';

export interface PartitionedLogConsumer {
  sql: Sql;
  namespace: string;
  group: string;
  partitions: number;
  consumerId: string;
  leaseMs: number;
  pollMs: number;
  batchSize: number;
  /** Resolves when new events may be there (a NOTIFY), or after pollMs. */
  waitForNews: (ms: number) => Promise<void>;
  log: (message: string, error?: unknown) => void;
}

export interface LogSubscription extends Subscription {
  /** Stops at once without finishing or acknowledging the events in hand (a process that dies). */
  abandon(): Promise<void>;
}

interface LogRow { seq: string; event: OutboxEvent }

/**
 * A consumer of the PostgreSQL log: it heartbeats, leases its fair share of the group's partitions (renewed
 * with every step), and hands each leased partition's events to the handler in order, advancing the
 * partition's position after each. An event whose handler did not finish is not advanced past, so the next
 * holder of the lease gets it again.
 */
export async function subscribeToLog(c: PartitionedLogConsumer, options: SubscribeOptions): Promise<LogSubscription> {
  const { sql } = c;
  const lease = `${c.leaseMs} milliseconds`;
  await sql`insert into messaging.positions (namespace, group_name, partition)
    select ${c.namespace}, ${c.group}, p from generate_series(0, ${c.partitions - 1}::int) p on conflict do nothing`;
  let state: 'running' | 'stopping' | 'abandoned' = 'running';
  // A function, not a comparison: `state` changes while this consumer awaits.
  const is = (s: typeof state) => state === s;
  let held: number[] = [];

  async function leasePartitions(): Promise<void> {
    await sql`insert into messaging.consumers (namespace, group_name, consumer_id, seen_until)
      values (${c.namespace}, ${c.group}, ${c.consumerId}, now() + ${lease}::interval)
      on conflict (namespace, group_name, consumer_id) do update set seen_until = excluded.seen_until`;
    const [live] = await sql<{ n: number }[]>`select count(*)::int as n from messaging.consumers
      where namespace = ${c.namespace} and group_name = ${c.group} and seen_until > now()`;
    const share = Math.ceil(c.partitions / Math.max(1, live!.n));
    if (held.length > share) {
      const extra = held.slice(share);
      await sql`update messaging.positions set lease_owner = null, lease_until = null
        where namespace = ${c.namespace} and group_name = ${c.group} and partition = any(${extra}::int[]) and lease_owner = ${c.consumerId}`;
    }
    const rows = await sql<{ partition: number }[]>`
      with candidates as (
        select partition from messaging.positions
        where namespace = ${c.namespace} and group_name = ${c.group}
          and (lease_owner = ${c.consumerId} or lease_owner is null or lease_until < now())
        order by lease_owner = ${c.consumerId} desc nulls last, partition
        limit ${share}
        for update skip locked
      )
      update messaging.positions p set lease_owner = ${c.consumerId}, lease_until = now() + ${lease}::interval
      from candidates where p.namespace = ${c.namespace} and p.group_name = ${c.group} and p.partition = candidates.partition
      returning p.partition`;
    held = rows.map((r) => r.partition).sort((a, b) => a - b);
  }

  /** Handles one batch of a partition; returns how many events it took (a full batch means: look again). */
  async function drainBatch(partition: number): Promise<number> {
    const rows = await sql<LogRow[]>`
      select l.seq, l.event from messaging.log l
      join messaging.positions p on p.namespace = l.namespace and p.partition = l.partition
      where p.namespace = ${c.namespace} and p.group_name = ${c.group} and p.partition = ${partition}
        and p.lease_owner = ${c.consumerId} and l.seq > p.position
        and (l.target_group is null or l.target_group = ${c.group})
      order by l.seq limit ${c.batchSize}`;
    if (options.handleBatch && rows.length > 1) {
      // The whole batch in one go: the runner applies it in one transaction, the position moves once.
      const outcomes = await options.handleBatch(rows.map((row) => ({ event: row.event, partition })));
      if (is('abandoned')) return 0;
      await advance(partition, rows, outcomes);
      return is('stopping') ? 0 : rows.length;
    }
    for (const row of rows) {
      if (is('abandoned')) return 0;
      const outcome = await options.handle({ event: row.event, partition });
      if (is('abandoned')) return 0;
      await advance(partition, [row], [outcome]);
      if (is('stopping')) return 0;
    }
    return rows.length;
  }

  /** Stores the dead letters among `outcomes` and moves the partition's position past `rows`, in one transaction. */
  async function advance(partition: number, rows: LogRow[], outcomes: Outcome[]): Promise<void> {
    const advanced = await sql.begin(async (tx) => {
      // Losing this commit in a crash only means a redelivery, which processed_messages absorbs.
      await tx`set local synchronous_commit = off`;
      for (let i = 0; i < rows.length; i++) {
        const outcome = outcomes[i]!;
        if (outcome.kind === 'dead-letter') {
          await tx`insert into messaging.dead_letters (id, namespace, group_name, partition, event, error, attempts)
            values (gen_random_uuid(), ${c.namespace}, ${c.group}, ${partition}, ${tx.json(rows[i]!.event as never)}, ${outcome.error}, ${outcome.attempts})`;
        }
      }
      return tx`update messaging.positions set position = ${rows.at(-1)!.seq}, lease_until = now() + ${lease}::interval
        where namespace = ${c.namespace} and group_name = ${c.group} and partition = ${partition} and lease_owner = ${c.consumerId}
        returning 1`;
    });
    if (advanced.length === 0) throw new Error(`lost the lease of partition ${partition}; rolled back`);
  }

  async function run(): Promise<void> {
    while (state === 'running') {
      let more = false;
      try {
        await leasePartitions();
        const taken = await Promise.all(held.map((p) => drainBatch(p)));
        more = taken.some((n) => n === c.batchSize);
      } catch (error) {
        if (state === 'running') c.log(`consumer ${c.group}: ${(error as Error).message}`, error);
      }
      if (!more && state === 'running') await c.waitForNews(c.pollMs);
    }
  }

  const loop = run();
  const release = async () => {
    await sql`update messaging.positions set lease_owner = null, lease_until = null
      where namespace = ${c.namespace} and group_name = ${c.group} and lease_owner = ${c.consumerId}`;
    await sql`delete from messaging.consumers where namespace = ${c.namespace} and group_name = ${c.group} and consumer_id = ${c.consumerId}`;
  };
  return {
    async stop() {
      if (state !== 'running') return;
      state = 'stopping';
      await loop;
      await release();
    },
    async abandon() {
      state = 'abandoned';
    },
  };
}
