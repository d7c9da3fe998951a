import { createHmac } from 'node:crypto';
import type { ConnectTarget, Sql } from './connect.ts';

const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Lets a bounded context's role (created by its migrations) log in, setting its password when one is given.
 * Runs as the administrative connection; ALTER ROLE takes no bind parameters, so the literal is quoted here.
 * @example await enableRoleLogin(adminSql, 'stratum_notes', secret);
 */
export async function enableRoleLogin(admin: Sql, role: string, password: string | undefined): Promise<void> {
  if (!ROLE.test(role)) throw new TypeError(`"${role}" is not a plain role name`);
  await admin.unsafe(
    password === undefined
      ? `alter role ${role} with login`
      : `alter role ${role} with login password ${quoteLiteral(password)}`,
  );
}

/**
 * The same server and database, reached as another role.
 * @example createPool(targetAs(target, 'stratum_notes', secret), { max: 5, applicationName: 'stratum-notes' });
 */
export function targetAs(target: ConnectTarget, user: string, password: string | undefined): ConnectTarget {
  return { ...target, user, password };
}

/**
 * A context role's password on a server whose administrative secret we hold (the embedded server): derived,
 * not stored, so every process of the same STRATUM_HOME arrives at the same one without coordinating.
 * @example deriveRolePassword(adminPassword, 'stratum_notes')
 */
export function deriveRolePassword(adminSecret: string, role: string): string {
  return createHmac('sha256', adminSecret).update(`role:${role}`).digest('base64url');
}
