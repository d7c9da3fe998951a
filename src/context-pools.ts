import type { Config } from './config/config.ts';
import { createPool, type ConnectTarget, type Sql } from './platform/db/connect.ts';
import { deriveRolePassword, enableRoleLogin, targetAs } from './platform/db/roles.ts';
import { AppError } from './platform/errors/app-error.ts';

/** One pool per bounded context that has a role of its own, beside the administrative pool. */
export interface ContextPools {
  accounts: Sql;
  images: Sql;
  end(timeoutSeconds?: number): Promise<void>;
}

const ROLES = { accounts: 'stratum_accounts', images: 'stratum_images' } as const;

export interface ContextPoolOptions {
  admin: Sql;
  target: ConnectTarget;
  /** The embedded server's administrative password: role passwords derive from it. */
  adminSecret: string | undefined;
  passwords: Config['rolePasswords'];
  poolMax: number;
  applicationName: string;
  statementTimeoutMs?: number;
}

/**
 * Lets each context's role log in and opens a pool as that role, so a context's SQL can reach only its own
 * schema. Run after the migrations (they create the roles).
 * @example const pools = await openContextPools({ admin: sql, target, adminSecret, passwords, poolMax: 10, applicationName });
 */
export async function openContextPools(options: ContextPoolOptions): Promise<ContextPools> {
  const opened: Sql[] = [];
  const open = async (context: keyof typeof ROLES): Promise<Sql> => {
    const role = ROLES[context];
    const password = options.passwords[context] ?? (options.adminSecret ? deriveRolePassword(options.adminSecret, role) : undefined);
    try {
      await enableRoleLogin(options.admin, role, password);
    } catch {
      // Not allowed to alter roles on this server: the operator manages them; the connection check below tells.
    }
    const pool = createPool(targetAs(options.target, role, password), {
      max: options.poolMax, applicationName: `${options.applicationName}-${context}`, statementTimeoutMs: options.statementTimeoutMs,
    });
    opened.push(pool);
    try {
      await pool`select 1`;
    } catch (error) {
      const hint = `set ${context.toUpperCase()}_DB_PASSWORD to the password of role ${role}`;
      throw new AppError('DB.UNAVAILABLE', `cannot connect as ${role}: ${(error as Error).message}; ${hint}`, { cause: error });
    }
    return pool;
  };
  const end = async (timeoutSeconds = 5) => { await Promise.all(opened.map((p) => p.end({ timeout: timeoutSeconds }))); };
  try {
    return { accounts: await open('accounts'), images: await open('images'), end };
  } catch (error) {
    await end(0);
    throw error;
  }
}
