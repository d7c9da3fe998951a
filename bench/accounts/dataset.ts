import { seededAccountId } from '../../src/contexts/accounts/seed-ids.ts';

/** Accounts the server process seeds: Person_0 … Person_14999, as `stratum seed accounts` makes them. */
export const SEEDED_ACCOUNTS = 15_000;

/** The cached target's ids: few enough that after warm-up every one is in the local tier. */
export const HOT_SET = 100;

/** A function that returns a random `/accounts/:id` path among the first `count` seeded accounts. */
export function randomAccountPath(count: number): () => string {
  const paths = Array.from({ length: count }, (_, i) => `/accounts/${seededAccountId(i)}`);
  return () => paths[Math.floor(Math.random() * count)]!;
}
