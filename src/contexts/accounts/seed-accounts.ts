import type { Db } from '../../platform/db/connect.ts';

/**
 * Seeds accounts `Person_<from>` … `Person_<to - 1>` with 1 to 5 events each, set-based. Ids are
 * `md5(name)::uuid` (see seed-ids.ts), so seeding a range twice adds nothing the second time.
 * Returns how many accounts were new.
 */
export async function seedAccountRange(db: Db, from: number, to: number): Promise<number> {
  const [inserted] = await db<{ n: number }[]>`
    with a as (
      insert into accounts.accounts (id, name, created)
      select md5('Person_' || i)::uuid, 'Person_' || i, now() from generate_series(${from}::int, ${to - 1}::int) i
      on conflict (id) do nothing
      returning id
    ) select count(*)::int as n from a`;
  await db`
    insert into accounts.account_events (id, account_id, event_name, created)
    select md5('Person_' || i || ':event:' || k)::uuid, md5('Person_' || i)::uuid,
           case when k = 1 then 'CREATED' else 'UPDATED' end, now() + make_interval(secs => k)
    from generate_series(${from}::int, ${to - 1}::int) i,
         generate_series(1, 1 + abs(hashtext('Person_' || i)) % 5) k
    on conflict (id) do nothing`;
  return inserted!.n;
}
