import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** The idempotency keys table (the main database and every shard carry one). */
export function idempotencyMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'idempotency' });
}
