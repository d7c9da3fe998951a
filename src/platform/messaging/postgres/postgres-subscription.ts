import type { Sql } from '../../db/connect.ts';
import type { Outcome, SubscribeOptions, Subscription } from '../broker.ts';
import type { LogNews } from './log-news.ts';
import { createLogReads, type LogRow } from './log-reads.ts';

export interface PartitionedLogConsumer {
  sql: Sql;
  namespace: string;
  group: string;
  partitions: number;
  consumerId: string;
  leaseMs: number;
  /** How long a caught-up partition waits for a NOTIFY before it looks again anyway. */
  pollMs: number;
  batchSize: number;
  /** The broker's NOTIFYs, per partition. */
  news: LogNews;
  /** Calls `rebalance` when a consumer of the group asks the others to rebalance; returns the way to stop. */
  onRebalance: (rebalance: () => void) => () => void;
  /** Asks every consumer of the group (this one too) to rebalance now. */
  askToRebalance: () => Promise<void>;
  log: (message: string, error?: unknown) => void;
}

export interface LogSubscription extends Subscription {
  /** Stops at once without finishing or acknowledging the events in hand (a process that dies). */
  abandon(): Promise<void>;
}

/** A partition this consumer serves: its loop, and how to end it. */
interface Served {
  loop: Promise<void>;
  /** Aborted when the partition is to be let go: the loop finishes the batch in hand and ends. */
  letGo: AbortController;
}

/**
 * A consumer of the PostgreSQL log: it heartbeats and, every leaseMs / 3 or when asked by a consumer that joined
 * or let partitions go, renews its leases and moves towards its fair share of the group's partitions. Each leased partition has a loop of its own that hands the partition's
 * events to the handler in order (a batch at a time through handleBatch when the runner has it) and advances
 * the partition's position after each batch; a caught-up partition waits for a NOTIFY naming it. An event
 * whose handler did not finish is not advanced past, so the next holder of the lease gets it again.
 */
export async function subscribeToLog(c: PartitionedLogConsumer, options: SubscribeOptions): Promise<LogSubscription> {
  const { sql } = c;
  const lease = `${c.leaseMs} milliseconds`;
  const maxPartitions = options.maxPartitions ?? c.partitions;
  await sql`insert into messaging.positions (namespace, group_name, partition)
    select ${c.namespace}, ${c.group}, p from generate_series(0, ${c.partitions - 1}::int) p on conflict do nothing`;
  let state: 'running' | 'stopping' | 'abandoned' = 'running';
  // A function, not a comparison: `state` changes while this consumer awaits.
  const is = (s: typeof state) => state === s;
  const served = new Map<number, Served>();
  const reads = createLogReads({
    sql,
    namespace: c.namespace,
    group: c.group,
    consumerId: c.consumerId,
    leaseMs: c.leaseMs,
    batchSize: c.batchSize,
  });
  let wakeTicks: (() => void) | undefined;
  /** A rebalance was asked for while a tick ran: tick again at once. */
  let tickAgain = false;

  /** Lets partitions go: their loops finish the batch in hand first, then the leases are freed. */
  async function letGo(partitions: number[]): Promise<void> {
    const loops = partitions.flatMap((p) => {
      const s = served.get(p);
      if (!s) return [];
      s.letGo.abort();
      return [s.loop];
    });
    await Promise.all(loops);
    for (const p of partitions) served.delete(p);
    await sql`update messaging.positions set lease_owner = null, lease_until = null
      where namespace = ${c.namespace} and group_name = ${c.group} and partition = any(${partitions}::int[]) and lease_owner = ${c.consumerId}`;
  }

  async function leasePartitions(): Promise<void> {
    await sql`insert into messaging.consumers (namespace, group_name, consumer_id, seen_until)
      values (${c.namespace}, ${c.group}, ${c.consumerId}, now() + ${lease}::interval)
      on conflict (namespace, group_name, consumer_id) do update set seen_until = excluded.seen_until`;
    const [live] = await sql<{ n: number }[]>`select count(*)::int as n from messaging.consumers
      where namespace = ${c.namespace} and group_name = ${c.group} and seen_until > now()`;
    const share = Math.min(maxPartitions, Math.ceil(c.partitions / Math.max(1, live!.n)));
    const mine = [...served.keys()].sort((a, b) => a - b);
    if (mine.length > share) {
      await letGo(mine.slice(share));
      await c.askToRebalance(); // the consumers waiting for them take them now
    }
    // Renewing waits for a running advance of the partition (a row lock), so it is not taken for lost. The rows
    // are locked in partition order, as the advances lock them (log-reads.ts), so the two never deadlock.
    const held = [...served.keys()];
    const renewed =
      held.length === 0
        ? []
        : (
            await sql<{ partition: number }[]>`
      with locked as materialized (
        select partition from messaging.positions
        where namespace = ${c.namespace} and group_name = ${c.group} and partition = any(${held}::int[]) and lease_owner = ${c.consumerId}
        order by partition
        for update
      )
      update messaging.positions p set lease_until = now() + ${lease}::interval
      from locked
      where p.namespace = ${c.namespace} and p.group_name = ${c.group} and p.partition = locked.partition and p.lease_owner = ${c.consumerId}
      returning p.partition`
          ).map((r) => r.partition);
    const lost = held.filter((p) => !renewed.includes(p));
    if (lost.length > 0) {
      c.log(`consumer ${c.group}: lost the lease of partition(s) ${lost.join(', ')}; another consumer serves them`);
      await letGo(lost);
    }
    const want = share - served.size;
    if (want <= 0 || !is('running')) return;
    const taken = await sql<{ partition: number }[]>`
      with candidates as (
        select partition from messaging.positions
        where namespace = ${c.namespace} and group_name = ${c.group}
          and (lease_owner is null or lease_until < now() or lease_owner = ${c.consumerId})
          and partition <> all(${[...served.keys()]}::int[])
        order by partition
        limit ${want}
        for update skip locked
      )
      update messaging.positions p set lease_owner = ${c.consumerId}, lease_until = now() + ${lease}::interval
      from candidates where p.namespace = ${c.namespace} and p.group_name = ${c.group} and p.partition = candidates.partition
      returning p.partition`;
    for (const { partition } of taken) {
      if (!is('running')) break;
      const controller = new AbortController();
      served.set(partition, { letGo: controller, loop: servePartition(partition, controller.signal) });
    }
  }

  /** Serves one leased partition until it is let go or the subscription stops. */
  async function servePartition(partition: number, letGoSignal: AbortSignal): Promise<void> {
    const stopping = () => !is('running') || letGoSignal.aborted;
    // The notice counter as it was before the read that gave `rows`: a notice since then means look again.
    let seen = c.news.seen(partition);
    let rows: LogRow[] = [];
    let read = false;
    while (!stopping()) {
      try {
        if (!read) {
          seen = c.news.seen(partition);
          rows = await reads.read(partition);
          read = true;
        }
        if (rows.length > 0) {
          const before = c.news.seen(partition);
          const next = await handleBatch(partition, rows, stopping);
          // Not read along with the advance: read now.
          if (next === undefined) read = false;
          else [seen, rows] = [before, next];
          continue;
        }
      } catch (error) {
        if (stopping()) break;
        c.log(`consumer ${c.group}: partition ${partition}: ${(error as Error).message}`, error);
        rows = [];
      }
      if (stopping()) break;
      await c.news.wait(partition, seen, c.pollMs, letGoSignal);
      read = false;
    }
  }

  /**
   * Hands `rows` to the handler and moves the partition's position past them. Returns the next batch when the
   * advance could read it in the same statement, undefined when it is still to be read (or the consumer stops).
   */
  async function handleBatch(
    partition: number,
    rows: LogRow[],
    stopping: () => boolean,
  ): Promise<LogRow[] | undefined> {
    if (options.handleBatch && rows.length > 1) {
      // The whole batch in one go: the runner applies it in one transaction, the position moves once.
      const outcomes = await options.handleBatch(rows.map((row) => ({ event: row.event, partition })));
      if (is('abandoned')) return undefined;
      if (outcomes.every((o) => o.kind === 'ack') && !stopping())
        return reads.advanceAndRead(partition, rows.at(-1)!.seq);
      await advance(partition, rows, outcomes);
      return undefined;
    }
    for (const [i, row] of rows.entries()) {
      if (is('abandoned')) return undefined;
      const outcome = await options.handle({ event: row.event, partition });
      if (is('abandoned')) return undefined;
      if (i === rows.length - 1 && outcome.kind === 'ack' && !stopping())
        return reads.advanceAndRead(partition, row.seq);
      await advance(partition, [row], [outcome]);
      if (stopping()) return undefined;
    }
    return undefined;
  }

  /** Stores the dead letters among `outcomes` and moves the partition's position past `rows`, in one transaction. */
  async function advance(partition: number, rows: LogRow[], outcomes: Outcome[]): Promise<void> {
    const position = rows.at(-1)!.seq;
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
      return tx`update messaging.positions set position = ${position}, lease_until = now() + ${lease}::interval
        where namespace = ${c.namespace} and group_name = ${c.group} and partition = ${partition} and lease_owner = ${c.consumerId}
        returning 1`;
    });
    if (advanced.length === 0) throw new Error(`lost the lease of partition ${partition}; rolled back`);
  }

  async function tick(): Promise<void> {
    const every = Math.max(10, Math.floor(c.leaseMs / 3));
    let joined = false;
    while (is('running')) {
      tickAgain = false;
      try {
        await leasePartitions();
        if (!joined) {
          joined = true;
          await c.askToRebalance(); // the others let this one have its share now rather than at their next tick
        }
      } catch (error) {
        if (is('running')) c.log(`consumer ${c.group}: ${(error as Error).message}`, error);
      }
      if (!is('running')) break;
      if (tickAgain) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, every);
        wakeTicks = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeTicks = undefined;
    }
  }

  const stopHearing = c.onRebalance(() => {
    tickAgain = true;
    wakeTicks?.();
  });
  const ticking = tick();
  const release = async () => {
    await sql`update messaging.positions set lease_owner = null, lease_until = null
      where namespace = ${c.namespace} and group_name = ${c.group} and lease_owner = ${c.consumerId}`;
    await sql`delete from messaging.consumers where namespace = ${c.namespace} and group_name = ${c.group} and consumer_id = ${c.consumerId}`;
  };
  return {
    async stop() {
      if (state !== 'running') return;
      state = 'stopping';
      wakeTicks?.();
      await ticking;
      for (const s of served.values()) s.letGo.abort();
      await Promise.all([...served.values()].map((s) => s.loop));
      served.clear();
      stopHearing();
      await release();
      await c.askToRebalance().catch(() => {}); // the others take the partitions now
    },
    async abandon() {
      state = 'abandoned';
      stopHearing();
      wakeTicks?.();
      for (const s of served.values()) s.letGo.abort();
      served.clear();
    },
  };
}
