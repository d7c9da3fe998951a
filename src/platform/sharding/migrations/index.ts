import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** The shard catalog: shards, the versioned bucket map, two-phase commit decisions, saga progress. */
export function catalogMigrations(): Migration[] {
  return loadMigrations({ fs, dir: fileURLToPath(new URL('.', import.meta.url)), context: 'sharding' });
}
