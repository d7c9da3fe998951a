import type { Config } from '../config/config.ts';
import type { ContextModule } from '../platform/context/context-module.ts';
import { grantPlatformAccess } from '../platform/context/grants.ts';
import type { Sql } from '../platform/db/connect.ts';
import { idempotencyMigrations } from '../platform/idempotency/migrations/index.ts';
import { messagingMigrations } from '../platform/messaging/migrations/index.ts';
import { outboxMigrations } from '../platform/messaging/outbox-migrations/index.ts';
import type { Migration } from '../platform/migrate/migration.ts';
import { createMigrator, type Migrator } from '../platform/migrate/migrator.ts';
import { catalogMigrations } from '../platform/sharding/migrations/index.ts';
import { shardDatabaseMigrations } from '../platform/sharding/shard-migrations/index.ts';
import { CONTEXTS } from './contexts.ts';

type Contexts = readonly ContextModule<Config>[];

/** The main database's migrations: the platform's tables first, then each context's, in the contexts' order. */
export function mainMigrations(contexts: Contexts = CONTEXTS): Migration[] {
  return [
    ...outboxMigrations(),
    ...messagingMigrations(),
    ...catalogMigrations(),
    ...idempotencyMigrations(),
    ...contexts.flatMap((c) => c.migrations?.() ?? []),
  ];
}

/** A shard database's migrations: the platform's shard tables and outbox, the sharded contexts' schemas. */
export function shardMigrations(contexts: Contexts = CONTEXTS): Migration[] {
  return shardDatabaseMigrations(contexts.flatMap((c) => c.shardMigrations?.() ?? []));
}

/**
 * The main database's migrator: every run ends by granting each context's role the platform tables its
 * descriptor names (the outbox, the idempotency keys).
 * @example await createMainMigrator(sql).up();
 */
export function createMainMigrator(
  sql: Sql,
  options: { log?: (line: string) => void; contexts?: Contexts } = {},
): Migrator {
  const contexts = options.contexts ?? CONTEXTS;
  const roles = contexts.flatMap((c) => (c.role ? [c.role] : []));
  return createMigrator({
    sql,
    migrations: mainMigrations(contexts),
    ...(options.log ? { log: options.log } : {}),
    afterUp: (tx) => grantPlatformAccess(tx, roles),
  });
}
