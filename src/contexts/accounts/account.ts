export interface AccountEvent {
  id: string;
  eventName: 'CREATED' | 'UPDATED' | string;
  created: string;
}

export interface Account {
  id: string;
  name: string;
  events: AccountEvent[];
}

/** Which instance served each part of an account's view (INSTANCE_NAME of each process). */
export interface ServedBy {
  /** The process that answered the request (the gateway in the split deployment). */
  gateway: string;
  /** The one that read the account and its events. */
  account: string;
  /** The one that read the image; absent when the image could not be had. */
  image?: string;
  /** The one that chose the quote; absent when the fallback quote stands in. */
  quote?: string;
}

export interface Quote {
  quote: string;
  language: string;
  ipAddress: string;
}

/**
 * What GET /accounts/:id answers: the account, its events, its image from the images context and a quote from the
 * quotes context, in one process or from the split deployment's services.
 */
export interface AccountView extends Account {
  imageData: { url: string } | null;
  quote: Quote;
  servedBy: ServedBy;
  /** Present when a part of the answer could not be had (`images`, `quotes`): null, or the fallback quote. */
  degraded?: string[];
}

/** The cached part of a view: the account with its events and image; the quote is chosen per request. */
export type CachedView = Omit<AccountView, 'quote' | 'servedBy' | 'degraded'> & {
  servedBy: Omit<ServedBy, 'gateway' | 'quote'>;
  degraded?: string[];
};

/** The account and its events as the accounts-data service answers them. */
export interface AccountRecord extends Account {
  servedBy: string;
}

export interface NameCount {
  name: string;
  count: number;
}

/** The port through which accounts reads an account's image; the images context implements it. */
export type ImageLookup = (accountId: string, signal: AbortSignal) => Promise<{ url: string } | null>;

/** The port `quotes.random` as accounts uses it: the quotes context implements it, in process or over HTTP. */
export type QuoteLookup = (signal: AbortSignal) => Promise<Quote & { servedBy: string }>;

/** What the answer carries when no quote could be had within QUOTES_TIMEOUT_MS. */
export const FALLBACK_QUOTE: Quote = Object.freeze({
  quote: 'Simplicity is prerequisite for reliability.',
  language: 'en',
  ipAddress: 'fallback',
});
