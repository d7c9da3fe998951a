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
 * @example await transaction({}, async (tx) => { await renameAccount(tx, id, name); await addToOutbox(tx, { type: 'account.updated', key: id, payload: { id, name } }); });
 */
export async function addToOutbox(tx: TxSql, event: NewEvent): Promise<string> {
  const [row] = await tx<{ id: string }[]>`
    with added as (
      insert into messaging.outbox (id, type, key, payload, headers)
      values (gen_random_uuid(), ${event.type}, ${event.key}, ${tx.json(event.payload as never)}, ${tx.json((event.headers ?? {}) as never)})
      returning id
    )
    select id, pg_notify(${OUTBOX_CHANNEL}, '') from added`;
  return row!.id;
}
