import type { Sql } from '../../db/connect.ts';
import type { OutboxEvent } from '../broker.ts';

export interface LogRow {
  seq: string;
  event: OutboxEvent;
}

export interface LogReadsOptions {
  sql: Sql;
  namespace: string;
  group: string;
  consumerId: string;
  leaseMs: number;
  batchSize: number;
}

export interface LogReads {
  /** The partition's next batch after its position; nothing when this consumer does not hold its lease. */
  read(partition: number): Promise<LogRow[]>;
  /**
   * Moves the partition's position to `position` (renewing the lease) and reads its next batch. Rejects when this
   * consumer no longer holds the lease: nothing was advanced.
   */
  advanceAndRead(partition: number, position: string): Promise<LogRow[]>;
}

interface Request {
  partition: number;
  position: string | undefined;
  resolve: (rows: LogRow[]) => void;
  reject: (error: unknown) => void;
}

/**
 * The reads and advances of one consumer's partitions, in as few statements as the partitions allow: one
 * statement is in flight at a time, and what the partitions ask for meanwhile goes together in the next one (it
 * advances those that have an advance, and reads the next batch of each). The advance commits without waiting for
 * the WAL flush: losing it in a crash only means a redelivery, which processed_messages absorbs.
 * @example const reads = createLogReads({ sql, namespace, group, consumerId, leaseMs: 10_000, batchSize: 500 }); const rows = await reads.read(3);
 */
export function createLogReads(o: LogReadsOptions): LogReads {
  const lease = `${o.leaseMs} milliseconds`;
  const queue: Request[] = [];
  let inFlight = false;

  function ask(partition: number, position: string | undefined): Promise<LogRow[]> {
    return new Promise<LogRow[]>((resolve, reject) => {
      queue.push({ partition, position, resolve, reject });
      if (!inFlight) void sendQueued();
    });
  }

  async function sendQueued(): Promise<void> {
    inFlight = true;
    try {
      while (queue.length > 0) {
        const requests = queue.splice(0);
        try {
          const rows = await readTogether(requests);
          for (const r of requests) {
            const found = rows.get(r.partition);
            if (found === undefined && r.position !== undefined)
              r.reject(new Error(`lost the lease of partition ${r.partition}; not advanced`));
            else r.resolve(found ?? []);
          }
        } catch (error) {
          for (const r of requests) r.reject(error);
        }
      }
    } finally {
      inFlight = false;
    }
  }

  /**
   * One statement: the advances, then the next batch of every partition asked for whose lease this consumer holds.
   * A partition missing from the result is not leased to this consumer (for an advance: it was not advanced).
   */
  async function readTogether(requests: Request[]): Promise<Map<number, LogRow[]>> {
    // A partition asks once at a time (its loop awaits), so each appears at most once.
    const advances = requests.filter((r) => r.position !== undefined);
    const reads = requests.filter((r) => r.position === undefined).map((r) => r.partition);
    const rows = await o.sql<Array<{ partition: number; seq: string | null; event: OutboxEvent | null }>>`
      with locked as materialized (
        -- In partition order, as the lease renewal locks them: in the order of a scan, which follows where the
        -- rows happen to be stored, two statements could each hold a row the other waits for.
        select partition from messaging.positions
        where namespace = ${o.namespace} and group_name = ${o.group} and partition = any(${advances.map((r) => r.partition)}::int[])
          and lease_owner = ${o.consumerId}
        order by partition
        for update
      ),
      moved as (
        update messaging.positions p set position = v.position, lease_until = now() + ${lease}::interval
        from locked, unnest(${advances.map((r) => r.partition)}::int[], ${advances.map((r) => r.position!)}::bigint[]) as v(partition, position),
          (select set_config('synchronous_commit', 'off', true)) as async_commit
        where p.namespace = ${o.namespace} and p.group_name = ${o.group} and p.partition = locked.partition and v.partition = locked.partition
          and p.lease_owner = ${o.consumerId}
        returning p.partition, p.position
      ),
      wanted as (
        select partition, position from moved
        union all
        select partition, position from messaging.positions
        where namespace = ${o.namespace} and group_name = ${o.group} and partition = any(${reads}::int[]) and lease_owner = ${o.consumerId}
      )
      select w.partition, l.seq, l.event from wanted w left join lateral (
        select seq, event from messaging.log
        where namespace = ${o.namespace} and partition = w.partition and seq > w.position
          and (target_group is null or target_group = ${o.group})
        order by seq limit ${o.batchSize}
      ) l on true
      order by w.partition, l.seq`;
    const byPartition = new Map<number, LogRow[]>();
    for (const row of rows) {
      const list = byPartition.get(row.partition) ?? byPartition.set(row.partition, []).get(row.partition)!;
      if (row.seq !== null) list.push({ seq: row.seq, event: row.event! });
    }
    return byPartition;
  }

  return {
    read: (partition) => ask(partition, undefined),
    advanceAndRead: (partition, position) => ask(partition, position),
  };
}
