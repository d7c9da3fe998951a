import type { Migration } from '../platform/migrate/migration.ts';
import { accountsMigrations } from './accounts/migrations/index.ts';
import { imagesMigrations } from './images/migrations/index.ts';
import { ordersMigrations } from './orders/migrations/index.ts';
import { usersMigrations } from './users/migrations/index.ts';
import { messagingMigrations } from '../platform/messaging/migrations/index.ts';
import { catalogMigrations } from '../platform/sharding/migrations/index.ts';
import { idempotencyMigrations } from '../platform/idempotency/migrations/index.ts';
import { shardMigrations as shardPlatformMigrations } from '../platform/sharding/shard-migrations/index.ts';

/** The main database's migrations, in the order the contexts apply. Orders live on the shards. */
export function allMigrations(): Migration[] {
  // messaging after the contexts: it grants the contexts' roles their right to write events.
  return [...usersMigrations(), ...accountsMigrations(), ...imagesMigrations(), ...messagingMigrations(), ...catalogMigrations(), ...idempotencyMigrations()];
}

/** An orders shard's migrations: the shard's own tables (identity, buckets, outbox), then the orders schema. */
export function shardMigrations(): Migration[] {
  return [...shardPlatformMigrations(), ...ordersMigrations(), ...idempotencyMigrations()];
}
