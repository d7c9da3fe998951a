import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** The text that also created the payments simulator's ledger, which a context's own migration keeps now. */
const FORMER = { 1: ['c5b2553f3221b0c5ff2c2586de2a35fb16301050481a4b5f95c64fddd588d757'] };

/** The shard catalog: shards, the versioned bucket map, two-phase commit decisions, saga progress. */
export function catalogMigrations(): Migration[] {
  return loadMigrations({
    fs,
    dir: fileURLToPath(new URL('.', import.meta.url)),
    formerChecksums: FORMER,
    context: 'sharding',
  });
}
