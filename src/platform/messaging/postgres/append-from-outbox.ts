import type postgres from 'postgres';
import type { Db } from '../../db/connect.ts';
import { partitionOf, type AppendedEvent, type ClaimedOutboxRow } from '../broker.ts';
import { LOG_CHANNEL, logLockName, logNotice } from './log-news.ts';

export interface LogTarget {
  namespace: string;
  partitions: number;
}

/**
 * The statement that appends claimed outbox rows of the same database to the log inside the relay's transaction
 * (`db` is its connection), built but not sent: the log's lock (held until the commit, so rows commit in seq
 * order), the rows built from the outbox, and the NOTIFY naming their partitions, in one statement. The events do
 * not travel to the process and back, and the outbox mark commits with the append (a relay killed before its
 * commit leaves both undone). `claimed` is not empty.
 * @example const appended = await appendFromOutbox(tx, { namespace: 'stratum', partitions: 8 }, claimed);
 */
export function appendFromOutbox(
  db: Db,
  target: LogTarget,
  claimed: readonly ClaimedOutboxRow[],
): postgres.PendingQuery<AppendedEvent[]> {
  const partitions = claimed.map((row) => partitionOf(row.key, target.partitions));
  // createdAt as Date.prototype.toISOString() writes it, as in events published from the process.
  return db<AppendedEvent[]>`
    with locked as materialized (select pg_advisory_xact_lock(hashtext(${logLockName(target.namespace)}))),
      notified as materialized (select pg_notify(${LOG_CHANNEL}, ${logNotice(target.namespace, partitions)}))
    insert into messaging.log (namespace, partition, target_group, event)
    select ${target.namespace}, t.p, null, jsonb_build_object('id', o.id, 'type', o.type, 'key', o.key, 'payload', o.payload,
      'headers', o.headers, 'createdAt', to_char(o.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    from locked, notified, unnest(${claimed.map((row) => row.seq)}::bigint[], ${partitions}::int[]) with ordinality as t(seq, p, n)
      join messaging.outbox o on o.seq = t.seq
    order by t.n
    returning event`;
}
