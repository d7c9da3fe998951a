import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../../platform/migrate/migration.ts';

/** The orders context's schema history. */
export function ordersMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'orders' });
}
