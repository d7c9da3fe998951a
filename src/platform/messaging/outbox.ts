import { randomUUID } from 'node:crypto';
import { tracingActive, withTraceHeaders } from '../observability/tracing.ts';
import type { TxSql } from '../db/connect.ts';
import { AWAKE_LOCK, WRITERS_LOCK } from './relay-wake.ts';

export interface NewEvent {
  type: string;
  /** The ordering key: events with the same key reach consumers in commit order. */
  key: string;
  payload: unknown;
  headers?: Record<string, string>;
}

/** The channel the relay listens on; a NOTIFY is delivered only when the writing transaction commits. */
export const OUTBOX_CHANNEL = 'stratum_outbox';

/**
 * Writes an event into the outbox inside the caller's transaction: it is published if and only if the
 * transaction commits. Returns the event id. Several events of one transaction go in one statement with
 * addAllToOutbox.
 * @example await transaction({}, async (tx) => { await renameNote(tx, id, title); await addToOutbox(tx, { type: 'note.renamed', key: id, payload: { id, title } }); });
 */
export async function addToOutbox(tx: TxSql, event: NewEvent, options: { notify?: boolean } = {}): Promise<string> {
  return (await addAllToOutbox(tx, [event], options))[0]!;
}

/**
 * Writes events into the outbox inside the caller's transaction, in one statement, in the order given (events
 * of one key reach consumers in that order). Returns their ids in the same order; nothing for no events.
 *
 * It NOTIFYs the relay only when no relay is awake (see relay-wake.ts): an awake relay looks again after each
 * batch and goes to sleep only after the writers that counted on it have committed. PostgreSQL serialises the
 * commits of notifying transactions, each with its own WAL flush, so a NOTIFY per business write would cap the
 * commit rate of every writer.
 * @example const ids = await addAllToOutbox(tx, lines.map((line) => ({ type: 'order.line_added', key: orderId, payload: line })));
 */
export async function addAllToOutbox(
  tx: TxSql,
  events: readonly NewEvent[],
  options: { notify?: boolean } = {},
): Promise<string[]> {
  if (events.length === 0) return [];
  // The ids are drawn here, so that they come back in the events' order without reading the outbox: the
  // contexts' roles may insert into it and read no column but id.
  const ids = events.map(() => randomUUID());
  const types = events.map((e) => e.type);
  const keys = events.map((e) => e.key);
  const payloads = events.map((e) => jsonText(e.payload, 'payload'));
  // Inside a trace, each event carries its context (`traceparent`) to the consumers that handle it.
  const traced = tracingActive();
  const headers = events.map((e) => JSON.stringify(traced ? withTraceHeaders({ ...e.headers }) : (e.headers ?? {})));
  // Identity values are drawn in the order the rows arrive: `order by n` gives the events seqs in array order.
  // `after`: a relation the rows are read after (a CTE that must run first).
  const rows = (after: string) => tx`
    select t.id, t.type, t.key, t.payload::jsonb, t.headers::jsonb
    from ${tx.unsafe(after)} unnest(${ids}::uuid[], ${types}::text[], ${keys}::text[], ${payloads}::text[], ${headers}::text[]) with ordinality as t(id, type, key, payload, headers, n)
    order by t.n`;
  // A transaction that will PREPARE (two-phase commit) may not NOTIFY: the relay's poll finds its events.
  if (options.notify === false) {
    await tx`insert into messaging.outbox (id, type, key, payload, headers) ${rows('')}`;
    return ids;
  }
  // WRITERS first (held until the commit), then the test of AWAKE: a session lock taken and let go at once, so
  // that writers never keep a relay from taking it.
  await tx`
    with entered as materialized (select pg_advisory_xact_lock_shared(${WRITERS_LOCK})),
      added as (
        insert into messaging.outbox (id, type, key, payload, headers) ${rows('entered,')}
        returning id
      ),
      woken as materialized (
        select case when pg_try_advisory_lock_shared(${AWAKE_LOCK}) then
          case when pg_advisory_unlock_shared(${AWAKE_LOCK}) then pg_notify(${OUTBOX_CHANNEL}, '') end
        end
        from (select 1 from added limit 1) written
      )
    select count(*) from added, woken`;
  return ids;
}

/** The payload as JSON text; `undefined` (which JSON cannot hold) is refused rather than written as nothing. */
function jsonText(value: unknown, what: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`outbox event ${what} is not JSON: ${String(value)}`);
  return text;
}
