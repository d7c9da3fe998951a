import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLab } from '../tools/lab/command.ts';
import { SUPERUSER_PASSWORD } from '../tools/lab/cluster.ts';
import { buildApp, type App } from '../src/http/app.ts';
import { createPool, describeTarget, primaryState, type Sql } from '../src/platform/db/connect.ts';
import { checkDatabaseReadiness } from '../src/platform/db/replication-status.ts';
import { createTransaction, type TransactionFn } from '../src/platform/db/transaction.ts';
import { createMetrics } from '../src/platform/observability/metrics.ts';
import { loadConfig } from '../src/config/config.ts';
import { loadToolsConfig } from '../src/config/tools-config.ts';
import { openContextPools } from '../src/app/context-pools.ts';
import { createMainMigrator } from '../src/app/migrations.ts';
import { assembleServices } from '../src/app/services.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createStatusReader } from '../src/http/dashboard/status.ts';
import type { Broker } from '../src/platform/messaging/broker.ts';

// The failover tests need the Patroni lab of this checkout: `npm run tools -- lab up` (root) prints the URL.
const LAB_URL = process.env.LAB_DATABASE_URL;
if (!LAB_URL)
  console.log(
    '[stratum tests] LAB_DATABASE_URL not set: skipping the failover tests on the Patroni lab (`npm run tools -- lab up` prints it)',
  );

const pools: Sql[] = [];
function pool(url: string, applicationName: string, max = 2): Sql {
  const sql = createPool({ url }, { max, applicationName, connectTimeoutSeconds: 2 });
  pools.push(sql);
  return sql;
}

function transactionOn(sql: Sql, retries: string[] = []): TransactionFn {
  return createTransaction({
    sql,
    defaultDeadlineMs: 2000,
    now: Date.now,
    random: Math.random,
    observer: { onRetry: (_l, reason) => retries.push(reason) },
  });
}

/** An app whose one write route runs a transaction on `sql`, and whose readiness reports on `sql`. */
async function appOver(sql: Sql, deadlineMs: number): Promise<App> {
  const transaction = transactionOn(sql);
  return buildApp({
    bodyLimitBytes: 1024,
    requestDeadlineMs: deadlineMs,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics({ sql, applicationName: 'ha-test', poolMax: 2 }),
    readiness: () => checkDatabaseReadiness(sql),
    routes: [
      (app) =>
        app.post('/writes', async () =>
          transaction({ label: 'ha.write', deadlineMs }, (tx) => tx`select 1 as one`).then(() => ({ written: true })),
        ),
    ],
  });
}

async function endPools(): Promise<void> {
  await Promise.all(pools.splice(0).map((p) => p.end({ timeout: 0 })));
}

describe('a primary target on several hosts (no lab needed)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
  });
  afterAll(async () => {
    await endPools();
    await db?.drop();
  });

  const withHosts = (hosts: string) => {
    const u = new URL(db.url);
    return `postgres://${u.username}${u.password ? `:${u.password}` : ''}@${hosts}${u.pathname}?target_session_attrs=primary`;
  };

  it('skips a dead first host, finds the primary and remembers it', async () => {
    const host = new URL(db.url).host;
    const sql = pool(withHosts(`127.0.0.1:1,${host}`), db.applicationName);
    const result = await transactionOn(sql)({}, async (tx) => (await tx`select current_database() as name`)[0]!.name);
    expect(result).toBe(db.name);
    expect(primaryState(sql)).toEqual({ primary: describeTarget({ url: db.url }), unreachable: false });
  });

  it('answers 503 DB.UNAVAILABLE with Retry-After, at the deadline, when no host is reachable', async () => {
    const sql = pool(withHosts('127.0.0.1:1,127.0.0.1:2'), 'ha-nowhere');
    const app = await appOver(sql, 500);
    try {
      const res = await app.inject({ method: 'POST', url: '/writes' });
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('DB.UNAVAILABLE');
      expect(res.headers['retry-after']).toBe('2');
      expect(primaryState(sql)?.unreachable).toBe(true);
    } finally {
      await app.close();
    }
  });
});

(LAB_URL ? describe : describe.skip)('failover on the Patroni lab', () => {
  const url = LAB_URL!;
  const [, credentials, database] = /^postgres(?:ql)?:\/\/([^@]*)@[^/]*\/([^?]*)/.exec(url) ?? [];
  const hosts = describeTarget({ url }).split(', ');
  const urlOf = (list: string[], attrs?: string) =>
    `postgres://${credentials}@${list.join(',')}/${database}${attrs ? `?target_session_attrs=${attrs}` : ''}`;
  const table = `ha_writes_${randomBytes(4).toString('hex')}`;
  const labOutput: string[] = [];
  const lab = async (action: string) => {
    const code = await runLab(
      [action],
      { out: (l) => labOutput.push(l), err: (l) => labOutput.push(l) },
      loadToolsConfig(process.env, process.cwd()).lab,
    );
    if (code !== 0) throw new Error(`lab ${action} failed:\n${labOutput.join('\n')}`);
  };
  let sql: Sql;

  /** Which listed host is the primary and which are replicas, asking each host alone. */
  async function roles(): Promise<{ primary: string; replicas: string[] }> {
    const answers = await Promise.all(
      hosts.map(async (host) => {
        const one = createPool(
          { url: urlOf([host]) },
          { max: 1, applicationName: 'ha-roles', connectTimeoutSeconds: 2 },
        );
        try {
          return (await one`select pg_is_in_recovery() as standby`)[0]!.standby ? 'replica' : 'primary';
        } catch {
          return 'down';
        } finally {
          await one.end({ timeout: 0 });
        }
      }),
    );
    const primary = hosts.find((_, i) => answers[i] === 'primary');
    if (!primary) throw new Error(`no primary among ${hosts.join(', ')}: ${answers.join(', ')}`);
    return { primary, replicas: hosts.filter((_, i) => answers[i] === 'replica') };
  }

  beforeAll(async () => {
    await lab('up');
    sql = pool(url, 'ha-lab', 4);
    await sql.unsafe(`create table ${table} (key text primary key, attempt int not null)`);
  }, 180_000);

  afterAll(async () => {
    await sql?.unsafe(`drop table if exists ${table}`);
    await endPools();
  });

  it('finds the primary when the first listed host is a replica', async () => {
    const { primary, replicas } = await roles();
    expect(replicas.length).toBeGreaterThan(0);
    const replicaFirst = pool(urlOf([...replicas, primary], 'primary'), 'ha-replica-first');
    const [row] =
      await replicaFirst`select concat_ws(':', host(inet_server_addr()), inet_server_port()) as host, pg_is_in_recovery() as standby`;
    expect(row).toEqual({ host: primary, standby: false });
    await transactionOn(replicaFirst)(
      {},
      (tx) => tx`insert into ${tx(table)} (key, attempt) values ('replica-first', 1)`,
    );
    expect(primaryState(replicaFirst)?.primary).toBe(primary);
  });

  it('reports the primary and its replicas on /readyz', async () => {
    const { primary, replicas } = await roles();
    const app = await appOver(sql, 2000);
    try {
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.cluster.primary).toBe(primary);
      expect(body.cluster.replicas).toHaveLength(replicas.length);
      for (const replica of body.cluster.replicas) {
        expect(replica.state).toBe('streaming');
        expect(typeof replica.lagBytes).toBe('number');
      }
    } finally {
      await app.close();
    }
  });

  /** Runs a transaction whose first attempt is cut by `fault` while it holds an uncommitted insert. */
  async function writeAcross(fault: 'switchover' | 'kill-leader', key: string) {
    const retries: string[] = [];
    let runs = 0;
    let faulted: Promise<void> | undefined;
    const attempt = await transactionOn(sql, retries)({ label: `ha.${fault}`, deadlineMs: 60_000 }, async (tx) => {
      const run = ++runs;
      await tx`insert into ${tx(table)} (key, attempt) values (${key}, ${run})`;
      if (run === 1) {
        faulted = lab(fault);
        // Still running when the fault ends this primary's sessions.
        await tx`select pg_sleep(60)`;
      }
      return run;
    });
    await faulted;
    return { attempt, retries };
  }

  it('runs a transaction cut by a switchover again, and it commits exactly once; the dashboard shows the failover', async () => {
    await lab('up');
    const before = (await roles()).primary;
    // The dashboard's cluster panel over this pool (no broker in this test: no consumer groups asked).
    const dashboard = createStatusReader({
      admin: sql,
      applicationName: 'ha-dashboard',
      outboxes: () => [{ name: 'main', target: { url } }],
      broker: { name: 'postgres' } as Broker,
      groups: [],
      runsWorkers: false,
      redis: false,
      reads: undefined,
      contexts: () => [],
    });
    let attempt = 0;
    try {
      const cluster = (await dashboard.read(0)).cluster;
      expect(cluster).toMatchObject({ configured: true, primary: before, lastFailover: null });
      if (cluster.configured) expect(cluster.replicas.length).toBeGreaterThan(0);
      const cut = await writeAcross('switchover', 'switchover');
      attempt = cut.attempt;
      const retries = cut.retries;
      expect(attempt).toBeGreaterThan(1);
      expect(retries.length).toBeGreaterThanOrEqual(attempt - 1);
      const after = (await roles()).primary;
      expect(after).not.toBe(before);
      let shown = (await dashboard.read(0)).cluster;
      for (let i = 0; i < 20 && !(shown.configured && shown.lastFailover); i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        shown = (await dashboard.read(0)).cluster;
      }
      expect(shown).toMatchObject({ configured: true, primary: after, lastFailover: { from: before, to: after } });
    } finally {
      await dashboard.close();
    }
    const rows = await sql`select attempt from ${sql(table)} where key = 'switchover'`;
    expect(rows.map((r) => r.attempt)).toEqual([attempt]);
  }, 120_000);

  it('runs a transaction cut by the loss of the leader again, and it commits exactly once', async () => {
    // Right after a switchover no replica may be promoted yet (synchronous_mode): start from a whole lab.
    await lab('up');
    const before = (await roles()).primary;
    try {
      const { attempt } = await writeAcross('kill-leader', 'kill-leader');
      expect(attempt).toBeGreaterThan(1);
      expect((await roles()).primary).not.toBe(before);
      const rows = await sql`select attempt from ${sql(table)} where key = 'kill-leader'`;
      expect(rows.map((r) => r.attempt)).toEqual([attempt]);
    } finally {
      // The killed node comes back as a replica.
      await lab('up');
    }
  }, 180_000);

  it('answers 503 DB.UNAVAILABLE with Retry-After when no primary appears within the deadline', async () => {
    const { replicas } = await roles();
    const replicasOnly = pool(urlOf(replicas, 'primary'), 'ha-replicas-only');
    const app = await appOver(replicasOnly, 1000);
    try {
      const res = await app.inject({ method: 'POST', url: '/writes' });
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('DB.UNAVAILABLE');
      expect(res.headers['retry-after']).toBe('2');
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().code).toBe('DB.UNAVAILABLE');
    } finally {
      await app.close();
    }
  });

  it('opens the context pools while a replica listed before the primary has not yet replayed the new password', async () => {
    const { primary, replicas } = await roles();
    await createMainMigrator(sql, { log: () => {} }).up();
    const replica = replicas[0]!;
    // A replica whose replay is paused is a replica that lags: it refuses the password the primary just set.
    const onReplica = pool(`postgres://postgres:${SUPERUSER_PASSWORD}@${replica}/postgres`, 'ha-replay-paused', 1);
    await onReplica`select pg_wal_replay_pause()`;
    const resumed = new Promise((r) => setTimeout(r, 1000)).then(() => onReplica`select pg_wal_replay_resume()`);
    try {
      const fresh = `-${randomBytes(4).toString('hex')}`;
      const pools = await openContextPools({
        admin: sql,
        target: { url: urlOf([replica, primary], 'primary') },
        adminSecret: undefined,
        passwords: { accounts: `accounts-lab${fresh}`, images: `images-lab${fresh}` },
        poolMax: 1,
        applicationName: 'ha-replica-lags',
      });
      try {
        const [row] = await pools.own.accounts!<{ standby: boolean }[]>`select pg_is_in_recovery() as standby`;
        expect(row!.standby).toBe(false);
      } finally {
        await pools.end(0);
      }
    } finally {
      await resumed;
    }
  }, 60_000);

  it('serves listings from a replica with DATABASE_READ_URL, and a user just created from the primary', async () => {
    const { primary, replicas } = await roles();
    const migrator = createMainMigrator(sql, { log: () => {} });
    await migrator.up();
    const readUrl = urlOf([primary, ...replicas], 'prefer-standby');
    const config = {
      ...loadConfig({ DATABASE_URL: url, DATABASE_READ_URL: readUrl, LOG_LEVEL: 'silent' }, process.cwd()),
    };
    const pools = await openContextPools({
      admin: sql,
      target: { url },
      adminSecret: undefined,
      passwords: { accounts: 'accounts-lab', images: 'images-lab' },
      poolMax: 2,
      applicationName: 'ha-reads',
      readTarget: { url: readUrl },
    });
    const services = await assembleServices(config, {
      admin: sql,
      target: { url },
      pools,
      applicationName: 'ha-reads',
    });
    try {
      // The read pool and the shards connect on first use: ready within a few seconds.
      let answer = await services.app.inject({ method: 'GET', url: '/readyz' });
      for (let i = 0; i < 50 && answer.statusCode !== 200; i++) {
        await new Promise((r) => setTimeout(r, 200));
        answer = await services.app.inject({ method: 'GET', url: '/readyz' });
      }
      expect(answer.statusCode, answer.body).toBe(200);
      const ready = answer.json();
      expect(ready.reads.standby).toBe(true);
      expect(replicas).toContain(ready.reads.host);
      const username = `reader-${randomBytes(4).toString('hex')}`;
      const created = await services.app.inject({
        method: 'POST',
        url: '/users',
        payload: { username, profile: { firstname: 'Read', lastname: 'Replica' } },
      });
      expect(created.statusCode).toBe(201);
      const id = created.json().id as unknown;
      // Read your own write: by id, from the primary, at once.
      expect((await services.app.inject({ method: 'GET', url: `/users/${id}` })).statusCode).toBe(200);
      // The listing comes from the replica: the new user appears there once replayed.
      let listed = false;
      for (let i = 0; i < 100 && !listed; i++) {
        let cursor: string | null = null;
        do {
          const page: { items: { id: unknown }[]; nextCursor: string | null } = (
            await services.app.inject({ method: 'GET', url: `/users?limit=200${cursor ? `&cursor=${cursor}` : ''}` })
          ).json();
          listed = page.items.some((u) => u.id === id);
          cursor = page.nextCursor;
        } while (!listed && cursor);
        if (!listed) await new Promise((r) => setTimeout(r, 50));
      }
      expect(listed).toBe(true);
      const [reader] = await pools.reads!.admin<{ standby: boolean }[]>`select pg_is_in_recovery() as standby`;
      expect(reader!.standby).toBe(true);
      expect((await services.app.inject({ method: 'GET', url: '/accounts?namePrefix=none-such' })).statusCode).toBe(
        200,
      );
    } finally {
      await services.close();
      await pools.end(0);
    }
  }, 120_000);
});
