import type { Db } from '../../platform/db/connect.ts';
import {
  FALLBACK_QUOTE,
  type AccountView,
  type CachedView,
  type ImageLookup,
  type Quote,
  type QuoteLookup,
} from './account.ts';
import { findAccountWithEvents } from './accounts-repository.ts';

/**
 * The account with its events (one query) and, at the same time, its image through the images port.
 * A failed or late image lookup degrades the answer instead of failing it.
 */
export async function loadAccountView(
  db: Db,
  lookupImage: ImageLookup,
  id: string,
  instance: string,
): Promise<CachedView | undefined> {
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
  if (image.ok) return { ...account, imageData: image.value, servedBy: { account: instance, image: instance } };
  return { ...account, imageData: null, servedBy: { account: instance }, degraded: ['images'] };
}

/** A quote for an answer: the port's, or the fallback one when it fails or takes longer than `timeoutMs`. */
export async function quoteWithin(
  lookup: QuoteLookup,
  timeoutMs: number,
): Promise<{ quote: Quote; servedBy?: string }> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const { servedBy, ...quote } = await new Promise<Quote & { servedBy: string }>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      lookup(signal).then(resolve, reject);
    });
    return { quote, servedBy };
  } catch {
    return { quote: FALLBACK_QUOTE };
  }
}

/** The answer of GET /accounts/:id: the cached part, this request's quote, and who served each part. */
export function composeView(
  cached: CachedView,
  quote: { quote: Quote; servedBy?: string },
  gateway: string,
): AccountView {
  const degraded = [...(cached.degraded ?? []), ...(quote.servedBy === undefined ? ['quotes'] : [])];
  return {
    id: cached.id,
    name: cached.name,
    events: cached.events,
    imageData: cached.imageData,
    quote: quote.quote,
    servedBy: {
      gateway,
      ...cached.servedBy,
      ...(quote.servedBy === undefined ? {} : { quote: quote.servedBy }),
    },
    ...(degraded.length > 0 ? { degraded } : {}),
  };
}
