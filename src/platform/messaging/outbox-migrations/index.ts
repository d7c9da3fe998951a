import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** The outbox table, applied to every database that publishes events: the main database and each shard. */
export function outboxMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'outbox' });
}
