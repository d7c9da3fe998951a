import type { Config } from '../config/config.ts';
import type { ContextModule } from '../platform/context/context-module.ts';
import { createPool, type ConnectTarget, type Sql } from '../platform/db/connect.ts';
import { deriveRolePassword, enableRoleLogin, targetAs } from '../platform/db/roles.ts';
import { AppError } from '../platform/errors/app-error.ts';
import { CONTEXTS } from './contexts.ts';

/** One pool per bounded context that has a role of its own, beside the administrative pool. */
export interface ContextPools {
  /** By context name: the pool as the context's role. */
  readonly own: Readonly<Record<string, Sql>>;
  /**
   * Pools on DATABASE_READ_URL (replicas) for reads that may lag: as the administrative user, and as the role of
   * each context that asks for read pools; absent without one.
   */
  readonly reads?: { readonly admin: Sql; readonly own: Readonly<Record<string, Sql>> };
  /** Every pool opened here. */
  all(): Sql[];
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
      throw new AppError('DB.UNAVAILABLE', `cannot connect as ${who}: ${(error as Error).message}; ${hint}`, {
        cause: error,
      });
    }
  }
}

export interface ContextPoolOptions {
  admin: Sql;
  target: ConnectTarget;
  /** The embedded server's administrative password, or DATABASE_URL's: role passwords derive from it. */
  adminSecret: string | undefined;
  /** `<CONTEXT>_DB_PASSWORD`, by context name: a role's password when it is not derived. */
  passwords: Readonly<Record<string, string | undefined>>;
  poolMax: number;
  applicationName: string;
  statementTimeoutMs?: number;
  /** DATABASE_READ_URL: also open read pools there, as the administrative user and as the roles that ask for them. */
  readTarget?: ConnectTarget;
  contexts?: readonly ContextModule<Config>[];
}

/**
 * Lets each context's role log in and opens a pool as that role, so a context's SQL can reach only its own
 * schema. Run after the migrations (they create the roles).
 * @example const pools = await openContextPools({ admin: sql, target, adminSecret, passwords, poolMax: 10, applicationName });
 */
export async function openContextPools(options: ContextPoolOptions): Promise<ContextPools> {
  const opened: Sql[] = [];
  const withRoles = (options.contexts ?? CONTEXTS).flatMap((c) => (c.role ? [{ name: c.name, role: c.role }] : []));
  const passwordOf = (context: string, role: string) =>
    options.passwords[context] ?? (options.adminSecret ? deriveRolePassword(options.adminSecret, role) : undefined);
  const open = async (context: string, role: string, target = options.target, suffix = ''): Promise<Sql> => {
    const password = passwordOf(context, role);
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
      max: options.poolMax,
      applicationName: `${options.applicationName}-${context}${suffix}`,
      statementTimeoutMs: options.statementTimeoutMs,
    });
    opened.push(pool);
    await checkConnects(
      pool,
      role,
      `set ${context.toUpperCase()}_DB_PASSWORD to the password of role ${role}`,
      suffix || setHere ? REPLICA_CATCH_UP_MS : 0,
    );
    return pool;
  };
  const end = async (timeoutSeconds = 5) => {
    await Promise.all(opened.map((p) => p.end({ timeout: timeoutSeconds })));
  };
  try {
    const own: Record<string, Sql> = {};
    for (const { name, role } of withRoles) own[name] = await open(name, role.name);
    let reads: ContextPools['reads'];
    if (options.readTarget) {
      const readTarget = options.readTarget;
      const admin = createPool(readTarget, {
        max: options.poolMax,
        applicationName: `${options.applicationName}-read`,
        statementTimeoutMs: options.statementTimeoutMs,
      });
      opened.push(admin);
      await checkConnects(admin, 'the DATABASE_READ_URL user', 'check DATABASE_READ_URL');
      const readOwn: Record<string, Sql> = {};
      for (const { name, role } of withRoles)
        if (role.reads) readOwn[name] = await open(name, role.name, readTarget, '-read');
      reads = { admin, own: readOwn };
    }
    return { own, ...(reads ? { reads } : {}), all: () => [...opened], end };
  } catch (error) {
    await end(0);
    throw error;
  }
}
