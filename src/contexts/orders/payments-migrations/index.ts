import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../../platform/migrate/migration.ts';

/** The orders context's tables on the main database: the payments simulator's ledger. */
export function paymentsMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'payments' });
}
