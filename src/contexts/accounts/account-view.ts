import type { Db } from '../../platform/db/connect.ts';
import type { AccountView, ImageLookup } from './account.ts';
import { findAccountWithEvents } from './accounts-repository.ts';

/**
 * The account with its events (one query) and, at the same time, its image through the images port.
 * A failed or late image lookup degrades the answer instead of failing it.
 */
export async function loadAccountView(db: Db, lookupImage: ImageLookup, id: string): Promise<AccountView | undefined> {
  const controller = new AbortController();
  const [account, image] = await Promise.all([
    findAccountWithEvents(db, id).catch((error: unknown) => {
      controller.abort(error);
      throw error;
    }),
    lookupImage(id, controller.signal).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
  ]);
  if (!account) return undefined;
  if (image.ok) return { ...account, imageData: image.value };
  return { ...account, imageData: null, degraded: ['images'] };
}
