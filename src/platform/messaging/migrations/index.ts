import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** The messaging tables: outbox, processed messages, and the PostgreSQL broker's log. */
export function messagingMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'messaging' });
}
