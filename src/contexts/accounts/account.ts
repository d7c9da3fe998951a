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

/** What GET /accounts/:id answers: the account, its events, and its image from the images context. */
export interface AccountView extends Account {
  imageData: { url: string } | null;
  /** Present when a part of the answer could not be had; those parts are null. */
  degraded?: string[];
}

export interface NameCount {
  name: string;
  count: number;
}

/** The port through which accounts reads an account's image; the images context implements it. */
export type ImageLookup = (accountId: string, signal: AbortSignal) => Promise<{ url: string } | null>;
