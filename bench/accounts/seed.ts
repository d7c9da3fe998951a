import { performance } from 'node:perf_hooks';
import type { ContextPools } from '../../src/app/context-pools.ts';
import { seedAccountRange } from '../../src/contexts/accounts/seed-accounts.ts';
import { seedImageRange } from '../../src/contexts/images/seed-images.ts';
import type { Sql } from '../../src/platform/db/connect.ts';

const CHUNK = 1000;

/**
 * Seeds accounts 0 … count-1 with events and images through the contexts' own pools, in chunks as
 * `stratum seed accounts` does (a second run adds nothing), then vacuums and analyzes the tables so an
 * autovacuum does not wake up during a timed run.
 */
export async function seedBenchAccounts(
  admin: Sql,
  pools: ContextPools,
  count: number,
  log: (line: string) => void,
): Promise<void> {
  const started = performance.now();
  let added = 0;
  for (let from = 0; from < count; from += CHUNK) {
    const to = Math.min(from + CHUNK, count);
    added += (await pools.own.accounts!.begin((tx) => seedAccountRange(tx, from, to))) as number;
    await seedImageRange(pools.own.images!, from, to);
  }
  await admin.unsafe('vacuum analyze accounts.accounts, accounts.account_events, images.account_images');
  log(`seeded ${count} accounts (${added} new) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
