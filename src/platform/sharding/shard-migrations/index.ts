import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** What every shard carries: identity, owned buckets, move notes, its own outbox. Applies before the context's. */
export function shardMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'shard' });
}
