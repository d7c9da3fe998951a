import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { idempotencyMigrations } from '../../idempotency/migrations/index.ts';
import { outboxMigrations } from '../../messaging/outbox-migrations/index.ts';
import { loadMigrations, type Migration } from '../../migrate/migration.ts';

/** Texts that carried a copy of the outbox; the outbox migration applies it to shards now. */
const FORMER = {
  1: ['12628c0d83f79167143bb27600757a4a3ae73b612e4fd336d3f66ffb1ecd9e1f'],
  2: ['277019ed742997232207d125888e6bf850d83b71d636c7f08e2a0a3e33a99ce4'],
};

/** What every shard carries of its own: identity, owned buckets. */
export function shardMigrations(): Migration[] {
  return loadMigrations({
    fs,
    dir: fileURLToPath(new URL('.', import.meta.url)),
    formerChecksums: FORMER,
    context: 'shard',
  });
}

/**
 * A shard database's whole history: the shard's own tables, the outbox, then the migrations of the contexts that
 * keep data on shards, then the idempotency keys.
 * @example createMigrator({ sql: shard, migrations: shardDatabaseMigrations(ordersMigrations()) });
 */
export function shardDatabaseMigrations(contexts: readonly Migration[]): Migration[] {
  return [...shardMigrations(), ...outboxMigrations(), ...contexts, ...idempotencyMigrations()];
}
