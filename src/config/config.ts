import path from 'node:path';
import { EVENT_ENCODINGS, type EventEncoding } from '../platform/messaging/codec/encodings.ts';

/** Where the database comes from: a server stratum starts itself, or one named by a URL. */
export type DatabaseSource = { kind: 'embedded'; home: string } | { kind: 'url'; url: string };

/** How a creation raises the other users' scores: in its transaction, in a consumer, or through the score log. */
export const SCORE_MODES = ['sync', 'async', 'deferred'] as const;
export type ScoreMode = (typeof SCORE_MODES)[number];

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly database: DatabaseSource;
  /**
   * Where listings and counts that may lag a little read from (DATABASE_READ_URL, usually several hosts with
   * target_session_attrs=prefer-standby); unset: the primary.
   */
  readonly readDatabaseUrl: string | undefined;
  readonly poolMax: number;
  readonly txDeadlineMs: number;
  /** Server-side limit for plain reads outside transactions. */
  readonly statementTimeoutMs: number;
  readonly bodyLimitBytes: number;
  readonly logLevel: string;
  readonly scoreMode: ScoreMode;
  /** SCORE_MODE=deferred: how often the background compaction folds the score log in; 0 = only on command. */
  readonly scoreCompactionIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  /** Where the outbox relays events: the embedded default `postgres`, or an external broker at BROKER_URL. */
  readonly broker: BrokerKind;
  readonly brokerUrl: string | undefined;
  /** How events travel to RabbitMQ, NATS and Redis: `json`, `msgpack` or `protobuf` (read whatever it is). */
  readonly eventEncoding: EventEncoding;
  /**
   * `all` serves HTTP and runs the relay and consumers; `api` only serves; `worker` only relays and consumes.
   * The split accounts deployment: `accounts` (the gateway), `accounts-data`, `images`, `quotes` (see SERVICE_ROLES).
   */
  readonly role: Role;
  /** This process's name in `servedBy` of answers (INSTANCE_NAME); unset: the role and the process id. */
  readonly instanceName: string | undefined;
  /** The instances of each service the gateway calls (ACCOUNTS_DATA_URLS, IMAGES_URLS, QUOTES_URLS). */
  readonly serviceUrls: Readonly<{
    accountsData: readonly string[];
    images: readonly string[];
    quotes: readonly string[];
  }>;
  /** Longest wait for a quote before the answer carries the fallback quote. */
  readonly quotesTimeoutMs: number;
  /**
   * Traces (OpenTelemetry): off with OTEL_SDK_DISABLED=true; exported by OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT
   * when set; the last ones kept in memory for /admin/traces either way.
   */
  readonly tracing: Readonly<{ enabled: boolean; otlpEndpoint: string | undefined }>;
  /** Bearer token of the /admin routes; without one they answer 404. */
  readonly adminToken: string | undefined;
  readonly cacheTtlMs: number;
  readonly cacheMaxEntries: number;
  /** A shared cache tier and cross-instance invalidation when set. */
  readonly redisUrl: string | undefined;
  /**
   * Passwords of the bounded contexts' roles on an external server, by context: `<NAME>_DB_PASSWORD` gives
   * `rolePasswords[name]` (lowercase). A context with none here derives its password on the embedded server.
   */
  readonly rolePasswords: Readonly<Record<string, string>>;
  /** Longest wait for the images context when reading an account. */
  readonly imagesTimeoutMs: number;
  /** Deadline of one order-items import (a COPY of a large file). */
  readonly importDeadlineMs: number;
  /** The orders shards registered at the catalog's first start: URLs, or databases on the main server. */
  readonly ordersShards: readonly ({ url: string } | { database: string })[] | undefined;
  /** With no ORDERS_SHARDS: how many shard databases the main server hosts. */
  readonly ordersShardCount: number;
  /** Most connections of each shard's pool. */
  readonly shardPoolMax: number;
  /** Deadline of each shard's part of a listing or stats across shards. */
  readonly shardDeadlineMs: number;
  /** An in-doubt two-phase commit branch with no recorded decision is rolled back once this old. */
  readonly inDoubtGraceMs: number;
  /** How long a running saga stays its process's before another process may resume it. */
  readonly sagaLeaseMs: number;
  /** How long an Idempotency-Key and its stored answer are kept. */
  readonly idempotencyTtlMs: number;
  /** Crash points armed for crash tests (STRATUM_FAULTS, comma-separated). */
  readonly faults: readonly string[];
  /** STRATUM_DEBUG set: a failure prints its stack too. */
  readonly debug: boolean;
  /** The whole environment of the embedded server's tools (initdb, pg_ctl): see childEnv. */
  readonly childEnv: Readonly<Record<string, string>>;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/** The roles of one process running every context, and of the split accounts deployment's services. */
export const SERVICE_ROLES = ['accounts', 'accounts-data', 'images', 'quotes'] as const;
const ROLES = ['all', 'api', 'worker', ...SERVICE_ROLES] as const;
export type Role = (typeof ROLES)[number];

export type BrokerKind = 'postgres' | 'rabbitmq' | 'nats' | 'redis';
const BROKERS: readonly BrokerKind[] = ['postgres', 'rabbitmq', 'nats', 'redis'];

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/**
 * ORDERS_SHARDS: PostgreSQL URLs separated by whitespace or `;` (a URL may itself list several hosts with
 * commas). Unset or empty: undefined (the main server hosts the shards).
 */
function parseShards(raw: string | undefined): Config['ordersShards'] {
  const parts = (raw ?? '').split(/[\s;]+/).filter(Boolean);
  if (parts.length === 0) return undefined;
  if (parts.length > 64) throw new ConfigError(`ORDERS_SHARDS lists ${parts.length} shards; at most 64`);
  for (const url of parts) {
    if (!/^postgres(ql)?:\/\//i.test(url))
      throw new ConfigError(`ORDERS_SHARDS entries must be postgres:// URLs, got "${url.slice(0, 40)}"`);
  }
  return Object.freeze(parts.map((url) => ({ url })));
}

const SERVICE_URL_VARIABLES = {
  accountsData: 'ACCOUNTS_DATA_URLS',
  images: 'IMAGES_URLS',
  quotes: 'QUOTES_URLS',
} as const;

/** A list of instance base URLs (http or https), separated by commas or whitespace; unset: none. */
function parseServiceUrls(env: Env, name: string): readonly string[] {
  const parts = (env[name] ?? '').split(/[\s,]+/).filter(Boolean);
  for (const part of parts) {
    let ok = false;
    try {
      const url = new URL(part);
      ok = (url.protocol === 'http:' || url.protocol === 'https:') && url.pathname === '/' && !url.search;
    } catch {
      ok = false;
    }
    if (!ok) throw new ConfigError(`${name} entries must be http(s)://host:port base URLs, got "${part.slice(0, 60)}"`);
  }
  return Object.freeze(parts.map((p) => p.replace(/\/+$/, '')));
}

/**
 * STRATUM_DEBUG: any non-empty value turns it on. Apart from loadConfig so that the CLI can print a stack even
 * when loadConfig itself fails.
 * @example if (debugEnabled(process.env)) err(error.stack);
 */
export function debugEnabled(env: Env): boolean {
  return Boolean(env.STRATUM_DEBUG);
}

/**
 * The environment of a child process that must not see the application's secrets (the embedded server's
 * initdb and pg_ctl, and so PostgreSQL): PATH (default `/usr/bin:/bin`), TZ when set, and the C locale.
 * @example spawn(file, args, { env: childEnv(process.env) });
 */
export function childEnv(env: Env): Readonly<Record<string, string>> {
  const tz = env.TZ;
  return Object.freeze({ PATH: env.PATH || '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', ...(tz ? { TZ: tz } : {}) });
}

/** `<NAME>_DB_PASSWORD`, NAME one word of capitals and digits: the password of context `name` (lowercase). */
const ROLE_PASSWORD = /^([A-Z][A-Z0-9]*)_DB_PASSWORD$/;

function rolePasswords(env: Env): Config['rolePasswords'] {
  const passwords: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    const context = ROLE_PASSWORD.exec(name)?.[1];
    // Empty: as if unset (the password is derived).
    if (context && value) passwords[context.toLowerCase()] = value;
  }
  return Object.freeze(passwords);
}

/**
 * Reads the configuration from an environment. Every variable the service reads is read in this file (here,
 * in debugEnabled or in childEnv); elsewhere `process.env` is only handed on whole.
 * @example const config = loadConfig(process.env, process.cwd());
 */
export function loadConfig(env: Env, cwd: string): Config {
  const url = env.DATABASE_URL?.trim();
  const home = path.resolve(cwd, env.STRATUM_HOME?.trim() || '.stratum');
  const scoreMode = env.SCORE_MODE?.trim() || 'sync';
  if (!(SCORE_MODES as readonly string[]).includes(scoreMode)) {
    throw new ConfigError(`SCORE_MODE must be "sync", "async" or "deferred", got "${scoreMode}"`);
  }
  const broker = env.BROKER?.trim() || 'postgres';
  if (!BROKERS.includes(broker as BrokerKind))
    throw new ConfigError(`BROKER must be one of ${BROKERS.join(', ')}, got "${broker}"`);
  const brokerUrl = env.BROKER_URL?.trim() || undefined;
  const eventEncoding = env.EVENT_ENCODING?.trim() || 'json';
  if (!(EVENT_ENCODINGS as readonly string[]).includes(eventEncoding))
    throw new ConfigError(`EVENT_ENCODING must be one of ${EVENT_ENCODINGS.join(', ')}, got "${eventEncoding}"`);
  if (broker !== 'postgres' && !brokerUrl) throw new ConfigError(`BROKER=${broker} needs BROKER_URL`);
  const readDatabaseUrl = env.DATABASE_READ_URL?.trim() || undefined;
  if (readDatabaseUrl && !url)
    throw new ConfigError('DATABASE_READ_URL needs DATABASE_URL (the embedded server has no replicas)');
  if (readDatabaseUrl && !/^postgres(ql)?:\/\//i.test(readDatabaseUrl))
    throw new ConfigError('DATABASE_READ_URL must be a postgres:// URL');
  const role = env.ROLE?.trim() || 'all';
  if (!(ROLES as readonly string[]).includes(role))
    throw new ConfigError(`ROLE must be one of ${ROLES.join(', ')}, got "${role}"`);
  const serviceUrls = {
    accountsData: parseServiceUrls(env, 'ACCOUNTS_DATA_URLS'),
    images: parseServiceUrls(env, 'IMAGES_URLS'),
    quotes: parseServiceUrls(env, 'QUOTES_URLS'),
  };
  const needs: Partial<Record<Role, Array<keyof typeof serviceUrls>>> = {
    accounts: ['accountsData', 'images', 'quotes'],
    images: ['accountsData'],
  };
  for (const dependency of needs[role as Role] ?? []) {
    if (serviceUrls[dependency].length === 0)
      throw new ConfigError(`ROLE=${role} needs ${SERVICE_URL_VARIABLES[dependency]} (the instances it calls)`);
  }
  return Object.freeze({
    host: env.HOST?.trim() || '127.0.0.1',
    port: readInt(env, 'PORT', 8080, 0, 65535),
    database: url ? { kind: 'url', url } : { kind: 'embedded', home },
    readDatabaseUrl,
    poolMax: readInt(env, 'DB_POOL_MAX', 10, 1, 1000),
    txDeadlineMs: readInt(env, 'TX_DEADLINE_MS', 2000, 10, 600_000),
    statementTimeoutMs: readInt(env, 'DB_STATEMENT_TIMEOUT_MS', 5000, 0, 3_600_000),
    bodyLimitBytes: readInt(env, 'BODY_LIMIT_BYTES', 64 * 1024, 1024, 100 * 1024 * 1024),
    logLevel: env.LOG_LEVEL?.trim() || 'info',
    scoreMode: scoreMode as ScoreMode,
    scoreCompactionIntervalMs: readInt(env, 'SCORE_COMPACTION_INTERVAL_MS', 30_000, 0, 86_400_000),
    broker: broker as BrokerKind,
    brokerUrl,
    eventEncoding: eventEncoding as EventEncoding,
    role: role as Role,
    instanceName: env.INSTANCE_NAME?.trim() || undefined,
    serviceUrls: Object.freeze(serviceUrls),
    quotesTimeoutMs: readInt(env, 'QUOTES_TIMEOUT_MS', 250, 1, 60_000),
    tracing: Object.freeze({ enabled: !readFlag(env, 'OTEL_SDK_DISABLED'), otlpEndpoint: otlpEndpoint(env) }),
    adminToken: env.ADMIN_TOKEN || undefined,
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    cacheTtlMs: readInt(env, 'CACHE_TTL_MS', 30_000, 0, 86_400_000),
    cacheMaxEntries: readInt(env, 'CACHE_MAX_ENTRIES', 10_000, 1, 1_000_000),
    redisUrl: env.REDIS_URL?.trim() || undefined,
    rolePasswords: rolePasswords(env),
    imagesTimeoutMs: readInt(env, 'IMAGES_TIMEOUT_MS', 250, 1, 60_000),
    importDeadlineMs: readInt(env, 'IMPORT_DEADLINE_MS', 600_000, 1000, 86_400_000),
    ordersShards: parseShards(env.ORDERS_SHARDS),
    ordersShardCount: readInt(env, 'ORDERS_SHARD_COUNT', 4, 1, 64),
    shardPoolMax: readInt(env, 'SHARD_POOL_MAX', 4, 1, 1000),
    shardDeadlineMs: readInt(env, 'SHARD_DEADLINE_MS', 2000, 10, 600_000),
    inDoubtGraceMs: readInt(env, 'IN_DOUBT_GRACE_MS', 30_000, 0, 86_400_000),
    sagaLeaseMs: readInt(env, 'SAGA_LEASE_MS', 30_000, 100, 86_400_000),
    idempotencyTtlMs: readInt(env, 'IDEMPOTENCY_TTL_MS', 86_400_000, 1000, 30 * 86_400_000),
    faults: Object.freeze(
      (env.STRATUM_FAULTS ?? '')
        .split(',')
        .map((f) => f.trim())
        .filter(Boolean),
    ),
    debug: debugEnabled(env),
    childEnv: childEnv(env),
  } satisfies Config);
}

/** Whether HOST is a loopback address: only this machine can reach the service. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A true/false variable: `true` or `false` (any case), unset or empty for false. */
function readFlag(env: Env, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

function otlpEndpoint(env: Env): string | undefined {
  const raw = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, got "${raw}"`);
  return raw.replace(/\/+$/, '');
}
