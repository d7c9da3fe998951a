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
 * transaction commits. Returns the event id.
 *
 * It NOTIFYs the relay only when no relay is awake (see relay-wake.ts): an awake relay looks again after each
 * batch and goes to sleep only after the writers that counted on it have committed. PostgreSQL serialises the
 * commits of notifying transactions, each with its own WAL flush, so a NOTIFY per business write would cap the
 * commit rate of every writer.
 * @example await transaction({}, async (tx) => { await renameAccount(tx, id, name); await addToOutbox(tx, { type: 'account.updated', key: id, payload: { id, name } }); });
 */
export async function addToOutbox(tx: TxSql, event: NewEvent, options: { notify?: boolean } = {}): Promise<string> {
  // A transaction that will PREPARE (two-phase commit) may not NOTIFY: the relay's poll finds its events.
  if (options.notify === false) {
    const [added] = await tx<{ id: string }[]>`
      insert into messaging.outbox (id, type, key, payload, headers)
      values (gen_random_uuid(), ${event.type}, ${event.key}, ${tx.json(event.payload as never)}, ${tx.json((event.headers ?? {}) as never)})
      returning id`;
    return added!.id;
  }
  // WRITERS first (held until the commit), then the test of AWAKE: a session lock taken and let go at once, so
  // that writers never keep a relay from taking it.
  const [row] = await tx<{ id: string }[]>`
    with entered as materialized (select pg_advisory_xact_lock_shared(${WRITERS_LOCK})),
      added as (
        insert into messaging.outbox (id, type, key, payload, headers)
        values (gen_random_uuid(), ${event.type}, ${event.key}, ${tx.json(event.payload as never)}, ${tx.json((event.headers ?? {}) as never)})
        returning id
      )
    select id, case when pg_try_advisory_lock_shared(${AWAKE_LOCK}) then
        case when pg_advisory_unlock_shared(${AWAKE_LOCK}) then pg_notify(${OUTBOX_CHANNEL}, '') end
      end
    from added, entered`;
  return row!.id;
}
