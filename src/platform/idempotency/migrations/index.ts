import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** The text that granted the keys to named roles; the contexts' descriptors do that now. */
const FORMER = { 1: ['fb43a03995482ead5f977ffd199ca5d1bced9850f5fe79f5630ead8a7c516f45'] };

/** The idempotency keys table (the main database and every shard carry one). */
export function idempotencyMigrations(): Migration[] {
  return loadMigrations({
    fs,
    dir: fileURLToPath(new URL('.', import.meta.url)),
    formerChecksums: FORMER,
    context: 'idempotency',
  });
}
