import { abortable } from '../../platform/db/abortable.ts';
import type { Db, TxSql } from '../../platform/db/connect.ts';

export interface AccountImage {
  accountId: string;
  url: string;
}

/** Sets (or replaces) an account's image. */
export async function upsertAccountImage(tx: TxSql, accountId: string, url: string): Promise<AccountImage> {
  const [row] = await tx<{ account_id: string; url: string }[]>`
    insert into images.account_images (account_id, url) values (${accountId}, ${url})
    on conflict (account_id) do update set url = excluded.url, updated = now()
    returning account_id, url`;
  return { accountId: row!.account_id, url: row!.url };
}

/** The account's image, or null; the query is cancelled when `signal` aborts. */
export async function findAccountImage(
  db: Db,
  accountId: string,
  signal: AbortSignal,
): Promise<{ url: string } | null> {
  const [row] = await abortable(
    db<{ url: string }[]>`select url from images.account_images where account_id = ${accountId}`,
    signal,
  );
  return row ? { url: row.url } : null;
}
