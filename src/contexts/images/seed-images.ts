import type { Db } from '../../platform/db/connect.ts';

/** Gives every second seeded account (`Person_<even i>`) in [from, to) an image; idempotent. */
export async function seedImageRange(db: Db, from: number, to: number): Promise<number> {
  const [row] = await db<{ n: number }[]>`
    with a as (
      insert into images.account_images (account_id, url)
      select md5('Person_' || i)::uuid, 'https://images.stratum.test/person/' || i || '.png'
      from generate_series(${from}::int, ${to - 1}::int) i where i % 2 = 0
      on conflict (account_id) do nothing
      returning 1
    ) select count(*)::int as n from a`;
  return row!.n;
}
