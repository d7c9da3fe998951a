import type { Config } from './config/config.ts';
import { createPool, type ConnectTarget, type Sql } from './platform/db/connect.ts';
import { deriveRolePassword, enableRoleLogin, targetAs } from './platform/db/roles.ts';
import { AppError } from './platform/errors/app-error.ts';

/** One pool per bounded context that has a role of its own, beside the administrative pool. */
export interface ContextPools {
  accounts: Sql;
  images: Sql;
  /** Pools on DATABASE_READ_URL (replicas) for reads that may lag; absent without one. */
  reads?: { admin: Sql; accounts: Sql };
  end(timeoutSeconds?: number): Promise<void>;
}

/**
 * How long a login may be refused while a replica has not yet replayed the role's new password: a read pool's
 * server, or a replica listed before the primary in a multi-host URL (the password is checked before the
 * server is asked whether it is the primary).
 */
const REPLICA_CATCH_UP_MS = 10_000;

/**
 * Proves the pool can log in. `waitMs`: keep trying a refused password that long (a replica replays the ALTER
 * ROLE of enableRoleLogin a moment after the primary committed it).
 */
async function checkConnects(pool: Sql, who: string, hint: string, waitMs = 0): Promise<void> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      await pool`select 1`;
      return;
    } catch (error) {
      const refused = (error as { code?: string }).code === '28P01';
      if (refused && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      throw new AppError('DB.UNAVAILABLE', `cannot connect as ${who}: ${(error as Error).message}; ${hint}`, { cause: error });
    }
  }
}

const ROLES = { accounts: 'stratum_accounts', images: 'stratum_images' } as const;

export interface ContextPoolOptions {
  admin: Sql;
  target: ConnectTarget;
  /** The embedded server's administrative password: role passwords derive from it. */
  adminSecret: string | undefined;
  passwords: Partial<Config['rolePasswords']>;
  poolMax: number;
  applicationName: string;
  statementTimeoutMs?: number;
  /** DATABASE_READ_URL: also open read pools there, as the administrative user and as the accounts role. */
  readTarget?: ConnectTarget;
}

/**
 * Lets each context's role log in and opens a pool as that role, so a context's SQL can reach only its own
 * schema. Run after the migrations (they create the roles).
 * @example const pools = await openContextPools({ admin: sql, target, adminSecret, passwords, poolMax: 10, applicationName });
 */
export async function openContextPools(options: ContextPoolOptions): Promise<ContextPools> {
  const opened: Sql[] = [];
  const passwordOf = (context: keyof typeof ROLES) =>
    options.passwords[context] ?? (options.adminSecret ? deriveRolePassword(options.adminSecret, ROLES[context]) : undefined);
  const open = async (context: keyof typeof ROLES, target = options.target, suffix = ''): Promise<Sql> => {
    const role = ROLES[context];
    const password = passwordOf(context);
    // Set here: a refusal can only be a server still replaying it. Not set: a refusal is a wrong password.
    let setHere = false;
    if (!suffix) {
      try {
        await enableRoleLogin(options.admin, role, password);
        setHere = true;
      } catch {
        // Not allowed to alter roles on this server: the operator manages them; the connection check below tells.
      }
    }
    const pool = createPool(targetAs(target, role, password), {
      max: options.poolMax, applicationName: `${options.applicationName}-${context}${suffix}`, statementTimeoutMs: options.statementTimeoutMs,
    });
    opened.push(pool);
    await checkConnects(pool, role, `set ${context.toUpperCase()}_DB_PASSWORD to the password of role ${role}`, suffix || setHere ? REPLICA_CATCH_UP_MS : 0);
    return pool;
  };
  const openReads = async (target: ConnectTarget) => {
    const admin = createPool(target, { max: options.poolMax, applicationName: `${options.applicationName}-read`, statementTimeoutMs: options.statementTimeoutMs });
    opened.push(admin);
    await checkConnects(admin, 'the DATABASE_READ_URL user', 'check DATABASE_READ_URL');
    return { admin, accounts: await open('accounts', target, '-read') };
  };
  const end = async (timeoutSeconds = 5) => { await Promise.all(opened.map((p) => p.end({ timeout: timeoutSeconds }))); };
  try {
    const accounts = await open('accounts');
    const images = await open('images');
    const reads = options.readTarget ? await openReads(options.readTarget) : undefined;
    return { accounts, images, ...(reads ? { reads } : {}), end };
  } catch (error) {
    await end(0);
    throw error;
  }
}
