import type { Db, TxSql } from '../../platform/db/connect.ts';
import { pipeline } from '../../platform/db/pipeline.ts';
import type { Account, AccountEvent, NameCount } from './account.ts';
import { prefixUpperBound } from './name-prefix.ts';

interface AccountRow {
  id: string;
  name: string;
  events: Array<{ id: string; eventName: string; created: string }>;
}

function eventOut(e: { id: string; eventName: string; created: string | Date }): AccountEvent {
  return { id: e.id, eventName: e.eventName, created: new Date(e.created).toISOString() };
}

function accountRowToAccount(row: AccountRow): Account {
  return { id: row.id, name: row.name, events: row.events.map(eventOut) };
}

const EVENTS_OF_A = `coalesce((
    select json_agg(json_build_object('id', e.id, 'eventName', e.event_name, 'created', e.created) order by e.created, e.id)
    from accounts.account_events e where e.account_id = a.id), '[]'::json)`;

/** Creates an account and its CREATED event in one statement. */
export async function insertAccount(tx: TxSql, name: string): Promise<Account> {
  const [row] = await tx<AccountRow[]>`
    with a as (
      insert into accounts.accounts (id, name) values (gen_random_uuid(), ${name}) returning id, name, created
    ), e as (
      insert into accounts.account_events (id, account_id, event_name, created)
      select gen_random_uuid(), a.id, 'CREATED', a.created from a
      returning id, event_name, created
    )
    select a.id, a.name, json_build_array(json_build_object('id', e.id, 'eventName', e.event_name, 'created', e.created)) as events
    from a cross join e`;
  return accountRowToAccount(row!);
}

/**
 * Renames an account and appends its UPDATED event; returns the account with all its events, or undefined
 * when there is no such account. Both statements go in one round trip.
 */
export async function renameAccount(tx: TxSql, id: string, name: string): Promise<Account | undefined> {
  const [, rows] = await pipeline([
    tx`with a as (
         update accounts.accounts set name = ${name}, updated = now() where id = ${id} returning id
       )
       insert into accounts.account_events (id, account_id, event_name, created)
       select gen_random_uuid(), a.id, 'UPDATED', clock_timestamp() from a`,
    tx<
      AccountRow[]
    >`select a.id, a.name, ${tx.unsafe(EVENTS_OF_A)} as events from accounts.accounts a where a.id = ${id}`,
  ]);
  return rows[0] ? accountRowToAccount(rows[0]) : undefined;
}

/** The account with its events, oldest first, from one query. */
export async function findAccountWithEvents(db: Db, id: string): Promise<Account | undefined> {
  const [row] = await db<
    AccountRow[]
  >`select a.id, a.name, ${db.unsafe(EVENTS_OF_A)} as events from accounts.accounts a where a.id = ${id}`;
  return row ? accountRowToAccount(row) : undefined;
}

export async function accountExists(db: Db, id: string): Promise<boolean> {
  const rows = await db`select 1 from accounts.accounts where id = ${id}`;
  return rows.length > 0;
}

/** Per account name starting with `prefix` (literally), the number of its events, in name order. */
export async function countEventsByNamePrefix(db: Db, prefix: string, limit: number): Promise<NameCount[]> {
  const upper = prefixUpperBound(prefix);
  const rows = await db<{ name: string; count: number }[]>`
    select a.name, count(e.id)::int as count
    from accounts.accounts a
    left join accounts.account_events e on e.account_id = a.id
    where (a.name collate "C") >= ${prefix} and (${upper}::text is null or (a.name collate "C") < ${upper})
    group by (a.name collate "C"), a.name
    order by (a.name collate "C")
    limit ${limit}`;
  return rows.map((r) => ({ name: r.name, count: r.count }));
}
