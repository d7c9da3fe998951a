import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { childEnv, type Config, ConfigError, debugEnabled, loadConfig } from '../src/config/config.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const load = (env: Record<string, string | undefined>) => loadConfig(env, '/srv/app');

describe('loadConfig: defaults', () => {
  it('an empty environment: the embedded server of ./.stratum, every default', () => {
    expect(load({})).toEqual({
      host: '127.0.0.1',
      port: 8080,
      database: { kind: 'embedded', home: '/srv/app/.stratum' },
      readDatabaseUrl: undefined,
      poolMax: 10,
      txDeadlineMs: 2000,
      statementTimeoutMs: 5000,
      bodyLimitBytes: 65_536,
      logLevel: 'info',
      scoreMode: 'sync',
      scoreCompactionIntervalMs: 30_000,
      broker: 'postgres',
      brokerUrl: undefined,
      eventEncoding: 'json',
      role: 'all',
      adminToken: undefined,
      shutdownTimeoutMs: 10_000,
      cacheTtlMs: 30_000,
      cacheMaxEntries: 10_000,
      redisUrl: undefined,
      rolePasswords: {},
      imagesTimeoutMs: 250,
      instanceName: undefined,
      serviceUrls: { accountsData: [], images: [], quotes: [] },
      quotesTimeoutMs: 250,
      tracing: { enabled: true, otlpEndpoint: undefined },
      importDeadlineMs: 600_000,
      ordersShards: undefined,
      ordersShardCount: 4,
      shardPoolMax: 4,
      shardDeadlineMs: 2000,
      inDoubtGraceMs: 30_000,
      sagaLeaseMs: 30_000,
      idempotencyTtlMs: 86_400_000,
      faults: [],
      debug: false,
      childEnv: { PATH: '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' },
    } satisfies Config);
  });

  it('is frozen', () => {
    const config = load({ ACCOUNTS_DB_PASSWORD: 'a' });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.rolePasswords)).toBe(true);
    expect(Object.isFrozen(config.childEnv)).toBe(true);
  });
});

describe('loadConfig: OTEL_SDK_DISABLED, OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  it('traces unless OTEL_SDK_DISABLED=true; exports where the endpoint says, without a trailing slash', () => {
    expect(load({}).tracing).toEqual({ enabled: true, otlpEndpoint: undefined });
    expect(load({ OTEL_SDK_DISABLED: 'TRUE' }).tracing.enabled).toBe(false);
    expect(load({ OTEL_SDK_DISABLED: 'false' }).tracing.enabled).toBe(true);
    expect(load({ OTEL_EXPORTER_OTLP_ENDPOINT: ' http://127.0.0.1:4318/ ' }).tracing.otlpEndpoint).toBe(
      'http://127.0.0.1:4318',
    );
  });

  it('refuses a flag that is not true or false, and an endpoint that is not an http(s) URL', () => {
    expect(() => load({ OTEL_SDK_DISABLED: 'yes' })).toThrow(/OTEL_SDK_DISABLED must be true or false/);
    expect(() => load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(() => load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://x' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });
});

describe('loadConfig: HOST, DATABASE_URL, STRATUM_HOME', () => {
  it('HOST is trimmed; empty means the default', () => {
    expect(load({ HOST: ' 0.0.0.0 ' }).host).toBe('0.0.0.0');
    expect(load({ HOST: '  ' }).host).toBe('127.0.0.1');
  });

  it('DATABASE_URL (trimmed) replaces the embedded server; STRATUM_HOME then does not matter', () => {
    expect(load({ DATABASE_URL: ' postgres://app@db/app ', STRATUM_HOME: '/x' }).database).toEqual({
      kind: 'url',
      url: 'postgres://app@db/app',
    });
    expect(load({ DATABASE_URL: '' }).database).toEqual({ kind: 'embedded', home: '/srv/app/.stratum' });
  });

  it('STRATUM_HOME: relative to cwd, or absolute', () => {
    expect(load({ STRATUM_HOME: 'data/home' }).database).toEqual({ kind: 'embedded', home: '/srv/app/data/home' });
    expect(load({ STRATUM_HOME: ' /var/lib/s ' }).database).toEqual({ kind: 'embedded', home: '/var/lib/s' });
  });
});

describe('loadConfig: DATABASE_READ_URL', () => {
  const primary = 'postgres://app@db1:5432,db2:5432/app?target_session_attrs=primary';
  const replicas = 'postgres://app@db2:5432,db1:5432/app?target_session_attrs=prefer-standby';

  it('is unset by default: every read goes to the primary', () => {
    expect(loadConfig({ DATABASE_URL: primary }, '/tmp').readDatabaseUrl).toBeUndefined();
  });

  it('is taken with DATABASE_URL', () => {
    expect(loadConfig({ DATABASE_URL: primary, DATABASE_READ_URL: ` ${replicas} ` }, '/tmp').readDatabaseUrl).toBe(
      replicas,
    );
  });

  it('is refused without DATABASE_URL, naming why', () => {
    expect(() => loadConfig({ DATABASE_READ_URL: replicas }, '/tmp')).toThrow(
      new ConfigError('DATABASE_READ_URL needs DATABASE_URL (the embedded server has no replicas)'),
    );
  });

  it('is refused when it is not a postgres:// URL', () => {
    expect(() => loadConfig({ DATABASE_URL: primary, DATABASE_READ_URL: 'db2:5432' }, '/tmp')).toThrow(
      /DATABASE_READ_URL must be a postgres:\/\/ URL/,
    );
  });
});

/** Every whole-number variable: its field, default and bounds. */
const NUMBERS: readonly [name: string, field: keyof Config, fallback: number, min: number, max: number][] = [
  ['PORT', 'port', 8080, 0, 65_535],
  ['DB_POOL_MAX', 'poolMax', 10, 1, 1000],
  ['TX_DEADLINE_MS', 'txDeadlineMs', 2000, 10, 600_000],
  ['DB_STATEMENT_TIMEOUT_MS', 'statementTimeoutMs', 5000, 0, 3_600_000],
  ['BODY_LIMIT_BYTES', 'bodyLimitBytes', 65_536, 1024, 100 * 1024 * 1024],
  ['SHUTDOWN_TIMEOUT_MS', 'shutdownTimeoutMs', 10_000, 0, 600_000],
  ['CACHE_TTL_MS', 'cacheTtlMs', 30_000, 0, 86_400_000],
  ['CACHE_MAX_ENTRIES', 'cacheMaxEntries', 10_000, 1, 1_000_000],
  ['IMAGES_TIMEOUT_MS', 'imagesTimeoutMs', 250, 1, 60_000],
  ['IMPORT_DEADLINE_MS', 'importDeadlineMs', 600_000, 1000, 86_400_000],
  ['ORDERS_SHARD_COUNT', 'ordersShardCount', 4, 1, 64],
  ['SHARD_POOL_MAX', 'shardPoolMax', 4, 1, 1000],
  ['SHARD_DEADLINE_MS', 'shardDeadlineMs', 2000, 10, 600_000],
  ['IN_DOUBT_GRACE_MS', 'inDoubtGraceMs', 30_000, 0, 86_400_000],
  ['SAGA_LEASE_MS', 'sagaLeaseMs', 30_000, 100, 86_400_000],
  ['IDEMPOTENCY_TTL_MS', 'idempotencyTtlMs', 86_400_000, 1000, 30 * 86_400_000],
];

describe('loadConfig: whole numbers', () => {
  it.each(NUMBERS)('%s: default, bounds, and the errors for a bad value', (name, field, fallback, min, max) => {
    expect(load({})[field]).toBe(fallback);
    expect(load({ [name]: '' })[field]).toBe(fallback);
    expect(load({ [name]: String(min) })[field]).toBe(min);
    expect(load({ [name]: String(max) })[field]).toBe(max);
    for (const bad of ['abc', '-1', '1.5', ' 12', '1e3']) {
      expect(() => load({ [name]: bad }), bad).toThrow(new ConfigError(`${name} must be a whole number, got "${bad}"`));
    }
    expect(() => load({ [name]: String(max + 1) })).toThrow(
      new ConfigError(`${name} must be between ${min} and ${max}, got ${max + 1}`),
    );
    if (min > 0)
      expect(() => load({ [name]: String(min - 1) })).toThrow(
        new ConfigError(`${name} must be between ${min} and ${max}, got ${min - 1}`),
      );
  });
});

describe('loadConfig: choices', () => {
  it('LOG_LEVEL is taken as given (pino checks it), trimmed', () => {
    expect(load({ LOG_LEVEL: ' silent ' }).logLevel).toBe('silent');
  });

  it('SCORE_MODE: sync, async or deferred; SCORE_COMPACTION_INTERVAL_MS bounded, 0 = only on command', () => {
    expect(load({ SCORE_MODE: 'async' }).scoreMode).toBe('async');
    expect(load({ SCORE_MODE: ' deferred ' }).scoreMode).toBe('deferred');
    expect(() => load({ SCORE_MODE: 'later' })).toThrow(
      new ConfigError('SCORE_MODE must be "sync", "async" or "deferred", got "later"'),
    );
    expect(load({ SCORE_COMPACTION_INTERVAL_MS: '0' }).scoreCompactionIntervalMs).toBe(0);
    expect(load({ SCORE_COMPACTION_INTERVAL_MS: '5000' }).scoreCompactionIntervalMs).toBe(5000);
    expect(() => load({ SCORE_COMPACTION_INTERVAL_MS: '-1' })).toThrow(ConfigError);
  });

  it('EVENT_ENCODING: json, msgpack or protobuf', () => {
    expect(load({ EVENT_ENCODING: ' msgpack ' }).eventEncoding).toBe('msgpack');
    expect(load({ EVENT_ENCODING: 'protobuf' }).eventEncoding).toBe('protobuf');
    expect(() => load({ EVENT_ENCODING: 'xml' })).toThrow(
      new ConfigError('EVENT_ENCODING must be one of json, msgpack, protobuf, got "xml"'),
    );
  });

  it('ROLE: all, api or worker, or a service of the split accounts deployment', () => {
    expect(load({ ROLE: 'api' }).role).toBe('api');
    expect(load({ ROLE: ' worker ' }).role).toBe('worker');
    expect(() => load({ ROLE: 'relay' })).toThrow(
      new ConfigError('ROLE must be one of all, api, worker, accounts, accounts-data, images, quotes, got "relay"'),
    );
    expect(load({ ROLE: 'quotes' }).role).toBe('quotes');
    expect(load({ ROLE: 'accounts-data' }).role).toBe('accounts-data');
    const urls = {
      ACCOUNTS_DATA_URLS: 'http://127.0.0.1:8101',
      IMAGES_URLS: 'http://127.0.0.1:8102/',
      QUOTES_URLS: 'http://127.0.0.1:8103, http://127.0.0.1:8104',
    };
    const gateway = load({ ROLE: 'accounts', ...urls, INSTANCE_NAME: ' gw-1 ' });
    expect(gateway.serviceUrls).toEqual({
      accountsData: ['http://127.0.0.1:8101'],
      images: ['http://127.0.0.1:8102'],
      quotes: ['http://127.0.0.1:8103', 'http://127.0.0.1:8104'],
    });
    expect(gateway.instanceName).toBe('gw-1');
    expect(() => load({ ROLE: 'accounts', ...urls, QUOTES_URLS: '' })).toThrow(
      new ConfigError('ROLE=accounts needs QUOTES_URLS (the instances it calls)'),
    );
    expect(() => load({ ROLE: 'images' })).toThrow(
      new ConfigError('ROLE=images needs ACCOUNTS_DATA_URLS (the instances it calls)'),
    );
    for (const bad of ['127.0.0.1:8101', 'ftp://h:1', 'http://h:1/path', 'http://h:1/?q=1'])
      expect(() => load({ IMAGES_URLS: bad })).toThrow(
        /^IMAGES_URLS entries must be http\(s\):\/\/host:port base URLs/,
      );
  });

  it('BROKER and BROKER_URL: an external broker needs its URL', () => {
    expect(load({ BROKER: 'nats', BROKER_URL: ' nats://127.0.0.1:4222 ' })).toMatchObject({
      broker: 'nats',
      brokerUrl: 'nats://127.0.0.1:4222',
    });
    expect(load({ BROKER_URL: 'amqp://x' })).toMatchObject({ broker: 'postgres', brokerUrl: 'amqp://x' });
    expect(() => load({ BROKER: 'kafka' })).toThrow(
      new ConfigError('BROKER must be one of postgres, rabbitmq, nats, redis, got "kafka"'),
    );
    expect(() => load({ BROKER: 'rabbitmq' })).toThrow(new ConfigError('BROKER=rabbitmq needs BROKER_URL'));
    expect(() => load({ BROKER: 'redis', BROKER_URL: ' ' })).toThrow(new ConfigError('BROKER=redis needs BROKER_URL'));
  });
});

describe('loadConfig: secrets and URLs', () => {
  it('ADMIN_TOKEN is taken exactly as given; empty means none', () => {
    expect(load({ ADMIN_TOKEN: ' s3cret ' }).adminToken).toBe(' s3cret ');
    expect(load({ ADMIN_TOKEN: '' }).adminToken).toBeUndefined();
  });

  it('REDIS_URL is trimmed; empty means none', () => {
    expect(load({ REDIS_URL: ' redis://127.0.0.1:6379 ' }).redisUrl).toBe('redis://127.0.0.1:6379');
    expect(load({ REDIS_URL: ' ' }).redisUrl).toBeUndefined();
  });

  it('<NAME>_DB_PASSWORD gives the password of context name (lowercase); empty values and other names are ignored', () => {
    const config = load({
      ACCOUNTS_DB_PASSWORD: 'a-pw',
      IMAGES_DB_PASSWORD: ' i pw ',
      ORDERS2_DB_PASSWORD: 'o-pw',
      PAYMENTS_DB_PASSWORD: '',
      MY_APP_DB_PASSWORD: 'x',
      accounts_DB_PASSWORD: 'x',
      '2FA_DB_PASSWORD': 'x',
      DB_PASSWORD: 'x',
      _DB_PASSWORD: 'x',
      USERS_DB_PASSWORD_OLD: 'x',
      USERS_DB_PASSWORD: undefined,
    });
    expect(config.rolePasswords).toEqual({ accounts: 'a-pw', images: ' i pw ', orders2: 'o-pw' });
  });
});

describe('loadConfig: ORDERS_SHARDS', () => {
  it('unset or blank: the main server hosts the shards', () => {
    expect(load({}).ordersShards).toBeUndefined();
    expect(load({ ORDERS_SHARDS: ' ; ' }).ordersShards).toBeUndefined();
  });

  it('URLs separated by whitespace or ";" (each may list hosts with commas)', () => {
    expect(load({ ORDERS_SHARDS: 'postgres://a/s0; postgresql://b1,b2/s1\n POSTGRES://c/s2' }).ordersShards).toEqual([
      { url: 'postgres://a/s0' },
      { url: 'postgresql://b1,b2/s1' },
      { url: 'POSTGRES://c/s2' },
    ]);
  });

  it('refuses other URLs, and more than 64 shards', () => {
    expect(() => load({ ORDERS_SHARDS: 'postgres://a/s0 mysql://b/s1' })).toThrow(
      new ConfigError('ORDERS_SHARDS entries must be postgres:// URLs, got "mysql://b/s1"'),
    );
    const many = Array.from({ length: 65 }, (_, i) => `postgres://h/s${i}`).join(' ');
    expect(() => load({ ORDERS_SHARDS: many })).toThrow(new ConfigError('ORDERS_SHARDS lists 65 shards; at most 64'));
  });
});

describe('loadConfig: STRATUM_FAULTS, STRATUM_DEBUG, PATH and TZ', () => {
  it('STRATUM_FAULTS: comma-separated, trimmed, blanks dropped', () => {
    expect(load({ STRATUM_FAULTS: ' 2pc:prepared, ,saga:ran:reserve-stock,' }).faults).toEqual([
      '2pc:prepared',
      'saga:ran:reserve-stock',
    ]);
  });

  it('STRATUM_DEBUG: any non-empty value, also without loadConfig (debugEnabled)', () => {
    expect(load({ STRATUM_DEBUG: '1' }).debug).toBe(true);
    expect(debugEnabled({ STRATUM_DEBUG: 'yes' })).toBe(true);
    expect(debugEnabled({ STRATUM_DEBUG: '' })).toBe(false);
    expect(debugEnabled({})).toBe(false);
    // A setting loadConfig refuses does not turn debugging off.
    const env = { STRATUM_DEBUG: '1', PORT: 'x' };
    expect(() => load(env)).toThrow(ConfigError);
    expect(debugEnabled(env)).toBe(true);
  });

  it('childEnv: PATH and TZ only, the C locale, nothing else (no secrets)', () => {
    const env = {
      PATH: '/opt/bin:/usr/bin',
      TZ: 'Europe/Paris',
      DATABASE_URL: 'postgres://app:secret@db/app',
      ACCOUNTS_DB_PASSWORD: 'pw',
      HOME: '/root',
    };
    expect(childEnv(env)).toEqual({ PATH: '/opt/bin:/usr/bin', LC_ALL: 'C', LANG: 'C', TZ: 'Europe/Paris' });
    expect(loadConfig(env, '/tmp').childEnv).toEqual(childEnv(env));
    expect(childEnv({ PATH: '', TZ: '' })).toEqual({ PATH: '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' });
  });
});

/** The first column's names of the README's configuration table; `<CONTEXT>_DB_PASSWORD` stays a pattern. */
function readmeVariables(): string[] {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.split(/^## Configuration$/m)[1]?.split(/^#{2,3} /m)[0] ?? '';
  const rows = section.split('\n').filter((line) => /^\|\s*`/.test(line));
  return rows.flatMap((row) => [...(row.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
}

const documented = (name: string, table: readonly string[]) =>
  table.some((entry) => new RegExp(`^${entry.replace(/<[A-Z]+>/g, '[A-Z][A-Z0-9]*')}$`).test(name));

describe('the README documents every variable config.ts reads', () => {
  const table = readmeVariables();

  it('finds the table', () => {
    expect(table).toContain('DATABASE_URL');
    expect(table).toContain('<CONTEXT>_DB_PASSWORD');
  });

  it("every name in config.ts (env.X, env['X'], readInt(env, 'X', ...)) is in the table", () => {
    const source = fs.readFileSync(path.join(root, 'src/config/config.ts'), 'utf8');
    const read = new Set(
      [
        ...source.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g),
        ...source.matchAll(/\benv\[\s*['"`]([A-Z][A-Z0-9_]*)['"`]\s*\]/g),
        ...source.matchAll(/\(\s*env\s*,\s*['"`]([A-Z][A-Z0-9_]*)['"`]/g),
      ].map((m) => m[1]!),
    );
    expect(read.size).toBeGreaterThan(30);
    expect([...read].filter((name) => !documented(name, table))).toEqual([]);
    // And the other way: no row for a variable that nothing reads (a pattern row is covered by its own test).
    expect(table.filter((entry) => !entry.includes('<') && !read.has(entry))).toEqual([]);
  });

  it('every name loadConfig looks up at run time is in the table', () => {
    const looked = new Set<string>();
    const env = new Proxy({} as Record<string, string | undefined>, {
      get(target, key) {
        if (typeof key === 'string') looked.add(key);
        return Reflect.get(target, key);
      },
    });
    loadConfig(env, '/tmp');
    expect(looked.size).toBeGreaterThan(30);
    expect([...looked].filter((name) => !documented(name, table))).toEqual([]);
  });

  it('the pattern row matches the role password names and nothing loadConfig ignores', () => {
    expect(documented('ACCOUNTS_DB_PASSWORD', table)).toBe(true);
    expect(documented('ORDERS2_DB_PASSWORD', table)).toBe(true);
    expect(documented('MY_APP_DB_PASSWORD', table)).toBe(false);
  });
});

describe('no variable is read outside src/config', () => {
  it('src and tools use process.env only whole (handed on, or to loadConfig/loadToolsConfig)', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (/\.[cm]?[jt]s$/.test(entry.name) && !file.startsWith(path.join(root, 'src/config') + path.sep)) {
          fs.readFileSync(file, 'utf8')
            .split('\n')
            .forEach((line, i) => {
              // process.env.X, process.env['X'], process.env[name], const { X } = process.env
              if (/process\.env\s*(\.|\[|\?\.)|\{[^}]*\}\s*=\s*process\.env\b/.test(line))
                offenders.push(`${path.relative(root, file)}:${i + 1}: ${line.trim()}`);
            });
        }
      }
    };
    walk(path.join(root, 'src'));
    walk(path.join(root, 'tools'));
    expect(offenders).toEqual([]);
  });
});
