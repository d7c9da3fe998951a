import type { TxSql } from '../db/connect.ts';

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
 * It NOTIFYs the relay only when it sees no other unsent event (its own transaction's earlier ones included):
 * otherwise the relay is busy with those, or has them to pick up, and looks again after each batch (see
 * relay.ts). PostgreSQL serialises the commits of notifying transactions, each with its own WAL flush, so a
 * NOTIFY per business write would cap the commit rate of every writer.
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
  // The statement's snapshot does not include its own insert: `exists` sees only other unsent rows.
  const [row] = await tx<{ id: string }[]>`
    with added as (
      insert into messaging.outbox (id, type, key, payload, headers)
      values (gen_random_uuid(), ${event.type}, ${event.key}, ${tx.json(event.payload as never)}, ${tx.json((event.headers ?? {}) as never)})
      returning id
    )
    select id, case when exists (select 1 from messaging.outbox where sent_at is null) then null
      else pg_notify(${OUTBOX_CHANNEL}, '') end
    from added`;
  return row!.id;
}
