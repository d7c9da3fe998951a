import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { mainMigrations as allMigrations } from '../src/app/migrations.ts';
import { checksumOf, loadMigrations, type Migration, type MigrationFs } from '../src/platform/migrate/migration.ts';
import { createMigrator } from '../src/platform/migrate/migrator.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
});
afterAll(async () => {
  await db?.drop();
});

function migration(context: string, version: number, up: string, down: string): Migration {
  return { context, version, name: `step_${version}`, up, down, checksum: checksumOf(up) };
}

const demo = [
  migration(
    'demo',
    1,
    'create schema demo; create table demo.t (id int primary key);',
    'drop table demo.t; drop schema demo;',
  ),
  migration('demo', 2, 'alter table demo.t add column note text;', 'alter table demo.t drop column note;'),
];

async function tables(schema: string) {
  const rows = await db.sql`select table_name from information_schema.tables where table_schema = ${schema} order by 1`;
  return rows.map((r) => r.table_name);
}

async function expectCode(promise: Promise<unknown>, code: string) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAppError(error) ? error.code : error).toBe(code);
}

describe('migrations', () => {
  it('applies the real migrations up, down and up again', async () => {
    const migrator = createMigrator({ sql: db.sql, migrations: allMigrations() });
    expect((await migrator.up()).length).toBe(allMigrations().length);
    expect(await tables('users')).toEqual(['actions', 'score_log', 'tally', 'user_profile', 'users']);
    await migrator.verify();
    expect(await migrator.up()).toEqual([]);

    await migrator.down(allMigrations().length);
    expect(await tables('users')).toEqual([]);
    expect((await migrator.status()).every((s) => s.state === 'pending')).toBe(true);
    await expectCode(migrator.verify(), 'MIGRATION.INVALID');

    await migrator.up();
    expect(await tables('users')).toEqual(['actions', 'score_log', 'tally', 'user_profile', 'users']);
    await migrator.down(allMigrations().length);
  });

  it('lets two migrators racing on two connections apply each migration once', async () => {
    const a = createMigrator({ sql: db.pool(2, 'migrator-a'), migrations: demo });
    const b = createMigrator({ sql: db.pool(2, 'migrator-b'), migrations: demo });
    const [fromA, fromB] = await Promise.all([a.up(), b.up()]);
    expect(fromA.length + fromB.length).toBe(2);
    const rows =
      await db.sql`select context, version from stratum.schema_migrations where context = 'demo' order by version`;
    expect(rows.map((r) => r.version)).toEqual([1, 2]);
    await a.down(2);
  });

  it('refuses to run when an applied migration changed', async () => {
    const migrator = createMigrator({ sql: db.sql, migrations: demo });
    await migrator.up();
    const edited = [demo[0]!, migration('demo', 2, 'alter table demo.t add column note varchar(10);', demo[1]!.down)];
    const changed = createMigrator({ sql: db.sql, migrations: edited });
    await expectCode(changed.up(), 'MIGRATION.CHECKSUM_MISMATCH');
    await expectCode(changed.verify(), 'MIGRATION.CHECKSUM_MISMATCH');
    expect((await changed.status()).find((s) => s.version === 2)!.state).toBe('changed');
    await migrator.down(2);
  });

  it('refuses to run when the database is newer than the code', async () => {
    const newer = createMigrator({ sql: db.sql, migrations: demo });
    await newer.up();
    const older = createMigrator({ sql: db.sql, migrations: demo.slice(0, 1) });
    await expectCode(older.up(), 'MIGRATION.UNKNOWN_APPLIED');
    expect((await older.status()).find((s) => s.version === 2)!.state).toBe('unknown');
    await newer.down(2);
  });

  it('rolls back a failing run completely', async () => {
    const broken = [...demo, migration('demo', 3, 'alter table demo.missing add column x int;', 'select 1;')];
    await expect(createMigrator({ sql: db.sql, migrations: broken }).up()).rejects.toThrow(/demo.missing/);
    expect(await tables('demo')).toEqual([]);
    expect(await db.sql`select 1 from stratum.schema_migrations where context = 'demo'`).toHaveLength(0);
  });

  it('gives up with MIGRATION.LOCK_TIMEOUT while another process holds the lock', async () => {
    const holder = db.pool(1, 'lock-holder');
    let release!: () => void;
    let held!: () => void;
    const isHeld = new Promise<void>((r) => {
      held = r;
    });
    const holding = holder.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${0x7374726174756dn.toString()}::bigint)`;
      held();
      await new Promise<void>((r) => {
        release = r;
      });
    });
    await isHeld;
    await expectCode(
      createMigrator({ sql: db.sql, migrations: demo, lockTimeoutMs: 200 }).up(),
      'MIGRATION.LOCK_TIMEOUT',
    );
    release();
    await holding;
    await holder.end();
  });
});

describe('loadMigrations()', () => {
  const fakeFs = (files: Record<string, string>): MigrationFs => ({
    readdirSync: () => Object.keys(files),
    readFileSync: (file) => files[file.split('/').pop()!]!,
  });

  it('pairs up and down files in version order', () => {
    const loaded = loadMigrations({
      fs: fakeFs({
        '0002_b.up.sql': 'B',
        '0002_b.down.sql': 'b',
        '0001_a.up.sql': 'A',
        '0001_a.down.sql': 'a',
        'index.ts': '',
      }),
      dir: '/m',
      context: 'x',
    });
    expect(loaded.map((m) => [m.version, m.name, m.up, m.down])).toEqual([
      [1, 'a', 'A', 'a'],
      [2, 'b', 'B', 'b'],
    ]);
    expect(loaded[0]!.checksum).toBe(checksumOf('A'));
  });

  it.each([
    [{ '0001_a.up.sql': 'A' }, /needs both/],
    [{ '1_a.up.sql': 'A', '1_a.down.sql': 'a' }, /is not named/],
    [{ '0001_a.up.sql': 'A', '0001_b.down.sql': 'a' }, /two names/],
  ])('rejects a malformed folder %#', (files, message) => {
    expect(() => loadMigrations({ fs: fakeFs(files), dir: '/m', context: 'x' })).toThrow(message);
  });
});
