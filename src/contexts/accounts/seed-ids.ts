import { createHash } from 'node:crypto';

/** The name of the i-th seeded account. */
export function seededAccountName(i: number): string {
  return `Person_${i}`;
}

/**
 * The id of the i-th seeded account: the md5 of its name as a UUID, so a second seeding finds the same
 * rows and a load test can address seeded accounts without asking the database.
 * The SQL side computes the same value with `md5('Person_' || i)::uuid`.
 * @example seededAccountId(0) // md5('Person_0') as 8-4-4-4-12
 */
export function seededAccountId(i: number): string {
  const hex = createHash('md5').update(seededAccountName(i)).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
