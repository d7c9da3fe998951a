import net from 'node:net';
import postgres from 'postgres';
import { AppError } from '../errors/app-error.ts';
import { createPoolGate, gatePool } from './pool-gate.ts';
import { createPrimaryLocator, type PrimaryLocator, type PrimaryState } from './primary-locator.ts';

/** A postgres.js pool. Repositories take one of these, or a transaction handle, as their first argument. */
export type Sql = postgres.Sql<Record<string, never>>;
/** A connection inside a transaction (what `sql.begin` hands its callback). */
export type TxSql = postgres.TransactionSql<Record<string, never>>;
/** Either a pool or a transaction: what a repository function accepts. */
export type Db = Sql | TxSql;

/** Where to connect: a URL (several hosts allowed, `host1:5432,host2:5432`) or discrete fields. */
export type ConnectTarget =
  | { url: string; user?: string; password?: string }
  | { host: string; port: number; user: string; password?: string; database: string };

export interface PoolOptions {
  /** Most connections the pool opens. */
  max: number;
  /** Seen in pg_stat_activity; metrics count this pool's connections by it. */
  applicationName: string;
  /** Seconds to wait for a TCP connection and the handshake. */
  connectTimeoutSeconds?: number;
  /** Seconds an unused connection stays open. */
  idleTimeoutSeconds?: number;
  onNotice?: (notice: postgres.Notice) => void;
  /**
   * Server-side limit for statements outside transaction() (plain reads), and for their lock waits, so no
   * query holds a connection forever. transaction() overrides it with its own deadline. 0 = no limit.
   */
  statementTimeoutMs?: number;
  /** Names the pool in errors, readiness and metrics (default: the application name). */
  name?: string;
  /** How long a caller outside any deadline scope waits for a connection (default 2000 ms). */
  acquireWaitMs?: number;
}

/**
 * Opens a lazily connecting pool. Numeric values stay strings (no float rounding); bigint counts too. Every
 * caller is admitted through a gate (see gatePool()): no wait for a connection outlives the caller's deadline.
 * @example const sql = createPool({ url: 'postgres://app@db1,db2/app?target_session_attrs=primary' }, { max: 10, applicationName: 'stratum' });
 */
export function createPool(target: ConnectTarget, options: PoolOptions): Sql {
  const gate = createPoolGate({ name: options.name ?? options.applicationName, max: options.max, now: Date.now });
  const raw = openDriverPool(target, options);
  const sql = gatePool(raw, gate, options.acquireWaitMs ?? 2000, Date.now);
  const locator = locators.get(raw);
  if (locator) locators.set(sql, locator);
  return sql;
}

function openDriverPool(target: ConnectTarget, options: PoolOptions): Sql {
  const common = {
    max: options.max,
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    idle_timeout: options.idleTimeoutSeconds ?? 60,
    max_lifetime: 60 * 30,
    // postgres.js's default grows to 20 s after a few broken connections: a failover would then be followed by
    // a long wait before the pool reconnects. Seconds, capped at 1.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    onnotice: options.onNotice ?? (() => {}),

    connection: {
      application_name: options.applicationName,
      ...(options.statementTimeoutMs
        ? { statement_timeout: options.statementTimeoutMs, lock_timeout: options.statementTimeoutMs }
        : {}),
    },
  };
  if ('url' in target) {
    // Options override the URL's credentials, so a multi-host URL can be reused for another role.
    const credentials = {
      ...(target.user ? { username: target.user } : {}),
      ...(target.password !== undefined ? { password: target.password } : {}),
    };
    // Several hosts: postgres.js tries them in turn for each connection; when the primary is wanted, the
    // locator remembers which host it is and paces the attempts while there is none.
    const multiHost = describeTarget(target).includes(',');
    const locator =
      multiHost && /[?&]target_session_attrs=(primary|read-write)(&|$)/.test(target.url)
        ? createPrimaryLocator()
        : undefined;
    const sockets = locator ? { socket: locator.socket } : multiHost ? {} : { socket: noDelaySocket };
    const sql = postgres(target.url, { ...common, ...sockets, ...credentials }) as unknown as Sql;
    if (locator) locators.set(sql, locator);
    return sql;
  }
  return postgres({
    ...common,
    ...({ socket: noDelaySocket } as object),
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
  }) as unknown as Sql;
}

const locators = new WeakMap<Sql, PrimaryLocator>();

/**
 * Which host a pool on a multi-host target (target_session_attrs=primary) last found to be the primary, and
 * whether a whole round of hosts has failed since; undefined for any other pool.
 * @example if (primaryState(sql)?.unreachable) throw new AppError('DB.UNAVAILABLE', 'no primary');
 */
export function primaryState(sql: Sql): PrimaryState | undefined {
  return locators.get(sql)?.state();
}

/** The password in a connection URL's user info (multi-host URLs too), or undefined. */
export function passwordOfUrl(url: string): string | undefined {
  const match = /^[a-z]+:\/\/([^@/?#]*)@/i.exec(url);
  const userInfo = match?.[1];
  if (!userInfo || !userInfo.includes(':')) return undefined;
  const password = decodeURIComponent(userInfo.slice(userInfo.indexOf(':') + 1));
  return password || undefined;
}

/** The hosts a target names, for messages: `db1:5432, db2:5432`. */
export function describeTarget(target: ConnectTarget): string {
  if (!('url' in target)) return `${target.host}:${target.port}`;
  try {
    const afterScheme = target.url.replace(/^[a-z]+:\/\//i, '');
    const hostPart =
      afterScheme.slice(afterScheme.lastIndexOf('@', afterScheme.search(/[/?]|$/)) + 1).split(/[/?]/)[0] ?? '';
    return hostPart
      .split(',')
      .map((h) => (h.includes(':') ? h : `${h || 'localhost'}:5432`))
      .join(', ');
  } catch {
    return 'the configured database';
  }
}

/**
 * Proves the database answers within `timeoutMs`, or throws DB.UNAVAILABLE with one line naming host and cause.
 * @example await checkReachable(sql, target, 8000);
 */
export async function checkReachable(sql: Sql, target: ConnectTarget, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'CONNECT_TIMEOUT' })),
      timeoutMs,
    );
  });
  try {
    await Promise.race([sql`select 1`, timeout]);
  } catch (error) {
    const cause = describeCause(error);
    throw new AppError('DB.UNAVAILABLE', `cannot reach PostgreSQL at ${describeTarget(target)}: ${cause}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
}

function describeCause(error: unknown): string {
  const e = error as { code?: string; message?: string; errors?: Array<{ code?: string; message?: string }> };
  if (Array.isArray(e?.errors) && e.errors.length > 0) return e.errors.map((x) => x.code ?? x.message).join(', ');
  if (e?.code && e.message && !e.message.includes(e.code)) return `${e.code} (${e.message})`;
  return e?.message || e?.code || String(error);
}

/**
 * A socket with TCP_NODELAY, as libpq opens them, for a single-host target. postgres.js's own sockets leave
 * Nagle's algorithm on, and a small message written right after a large one (the end of a COPY after its data)
 * then waits for the server's delayed ACK, about 40 ms per COPY. `host`/`port` are set as postgres.js sets them
 * (TLS takes the server name from them).
 */
function noDelaySocket({ host, port, path }: { host: string[]; port: number[]; path?: string }): net.Socket {
  if (path) return net.connect({ path });
  const socket = net.connect({ host: host[0], port: port[0]!, noDelay: true }) as net.Socket & {
    host?: string;
    port?: number;
  };
  socket.host = host[0];
  socket.port = port[0];
  return socket;
}
