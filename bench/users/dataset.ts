import { createMainMigrator } from '../../src/app/migrations.ts';
import type { Sql } from '../../src/platform/db/connect.ts';

const TABLES = 'users.users, users.user_profile, users.actions';

/**
 * Migrates an empty database and seeds `size` users with profiles in two set-based inserts. Autovacuum is
 * off on the users tables: `reset` vacuums before every creation, and an autovacuum waking up in the middle
 * of a timed creation would only add noise.
 */
export async function seedUsers(sql: Sql, size: number): Promise<void> {
  await createMainMigrator(sql).up();
  await sql.unsafe(
    TABLES.split(', ')
      .map((t) => `alter table ${t} set (autovacuum_enabled = false);`)
      .join('\n'),
  );
  await sql`insert into users.users (id, username, score)
    select g, 'user-' || g, (g % 997)::numeric / 4 from generate_series(1, ${size}::int) g`;
  await sql`insert into users.user_profile (user_id, firstname, lastname)
    select g, 'first-' || g, 'last-' || g from generate_series(1, ${size}::int) g`;
  await sql`select setval(pg_get_serial_sequence('users.users', 'id'), ${size}::int)`;
  await sql.unsafe(`vacuum analyze ${TABLES}`);
}

/**
 * Back to exactly `size` users: deletes the users created since (and their profiles), empties the actions and
 * vacuums, so the dead rows the last fan-out left behind do not slow the next creation down.
 */
export async function resetUsers(sql: Sql, size: number): Promise<void> {
  await sql`delete from users.user_profile where user_id > ${size}`;
  await sql`delete from users.users where id > ${size}`;
  await sql`delete from users.actions`;
  await sql.unsafe(`vacuum analyze ${TABLES}`);
}

/** What `verifyCreation` compares against: the users' score total before a creation. */
export async function scoreTotal(sql: Sql): Promise<{ n: number; total: string }> {
  const [row] = await sql<
    [{ n: number; total: string }]
  >`select count(*)::int as n, sum(score)::text as total from users.users`;
  return row;
}

/**
 * Checks that one creation did all the work: one new user with its profile and its action, and every one of
 * the `n` other users moved from score s to 1 + s + s / n (their total to n + S + S / n, up to rounding).
 */
export async function verifyCreation(sql: Sql, size: number, before: { n: number; total: string }): Promise<void> {
  const [row] = await sql<
    [{ added: number; profiles: number; actions: string[]; expected: string | null; fanOutOk: boolean }]
  >`
    select
      (select count(*)::int from users.users where id > ${size}) as added,
      (select count(*)::int from users.user_profile where user_id > ${size}) as profiles,
      (select array_agg(description) from users.actions) as actions,
      (select 'new user created with id ' || id || ' and username ' || username from users.users where id > ${size}) as expected,
      (select abs(sum(score) - (${before.n}::numeric + ${before.total}::numeric * (1 + 1 / ${before.n}::numeric))) < 1e-6
         from users.users where id <= ${size}) as "fanOutOk"`;
  const problems = [
    row.added === 1 ? '' : `${row.added} users were added, not 1`,
    row.profiles === 1 ? '' : `${row.profiles} profiles were added, not 1`,
    row.actions?.length === 1 && row.actions[0] === row.expected
      ? ''
      : `the actions are ${JSON.stringify(row.actions)}, not ["${row.expected}"]`,
    row.fanOutOk ? '' : "the other users' scores did not move by 1 + score + score / n",
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`a creation did not do the work it should: ${problems.join('; ')}`);
}
