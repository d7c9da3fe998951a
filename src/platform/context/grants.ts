import type { TxSql } from '../db/connect.ts';

/**
 * Platform tables a context's role may be granted: the outbox it publishes into, the idempotency keys it stores,
 * the processed-message rows its consumers' transactions write.
 */
export type PlatformAccess = 'outbox' | 'idempotency' | 'consumer';

const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

/** What each access grants; the outbox's writers insert and read back only the ids they drew. */
const GRANTS: Record<PlatformAccess, (role: string) => string> = {
  outbox: (role) =>
    `grant usage on schema messaging to ${role}; grant insert, select (id) on messaging.outbox to ${role}`,
  consumer: (role) =>
    `grant usage on schema messaging to ${role}; grant select, insert on messaging.processed_messages to ${role}`,
  idempotency: (role) =>
    `grant usage on schema idempotency to ${role}; grant select, insert, update, delete on idempotency.keys to ${role}`,
};

/**
 * Grants each context role the platform tables it declared, inside the migration run's transaction (after its
 * migrations, every run, so a database migrated before a role declared an access gets it too). A role that does
 * not exist (its context's migrations were reverted) is skipped. GRANT is idempotent.
 * @example await grantPlatformAccess(tx, [{ name: 'stratum_reports', uses: ['outbox'] }]);
 */
export async function grantPlatformAccess(
  tx: TxSql,
  roles: ReadonlyArray<{ name: string; uses: readonly PlatformAccess[] }>,
): Promise<void> {
  for (const role of roles) {
    if (!ROLE.test(role.name)) throw new TypeError(`"${role.name}" is not a plain role name`);
    const [exists] = await tx`select 1 from pg_roles where rolname = ${role.name}`;
    if (!exists) continue;
    for (const access of role.uses) await tx.unsafe(GRANTS[access](role.name));
  }
}
