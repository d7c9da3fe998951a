import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createMainMigrator } from '../../src/app/migrations.ts';
import type { Sql } from '../../src/platform/db/connect.ts';

const TABLES = ['users.users', 'users.user_profile', 'users.actions'];
const ROWS_PER_CHUNK = 5000;

/** A 32-bit integer hash (lowbias32): the same seed for the same id on every run and in every database. */
function mix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The score seeded for user `id`, an exact decimal: one in ten 0, the others 0 to 999,999 with 0 to 6
 * decimal places, so the fan-out meets many magnitudes and scales. None negative: a negative score crosses 0
 * after a few thousand creations, and near 0 a relative comparison of two correct results is meaningless.
 * @example seedScore(1) // '66.0843'
 */
export function seedScore(id: number): string {
  const h = mix(id);
  if (h % 10 === 0) return '0';
  const g = mix(h ^ 0x9e3779b9);
  const whole = g % 10 ** (1 + (h % 6));
  const places = (h >>> 8) % 7;
  if (places === 0) return String(whole);
  const fraction = String(mix(g) % 10 ** places).padStart(places, '0');
  return `${whole}.${fraction}`;
}

function* lines(size: number, line: (id: number) => string): Generator<string> {
  for (let from = 1; from <= size; from += ROWS_PER_CHUNK) {
    let chunk = '';
    for (let id = from; id < Math.min(from + ROWS_PER_CHUNK, size + 1); id++) chunk += `${line(id)}\n`;
    yield chunk;
  }
}

/**
 * Migrates an empty database and loads `size` users (ids 1..size, scores from `seedScore`, all current as of
 * the score log's origin) and their profiles through COPY in one transaction, sets the id sequence, checks that
 * the tally the statement triggers keep equals the row count, and vacuums and analyzes. Autovacuum is off on
 * the users tables, as in the baselines: an autovacuum waking up during a timed creation would only add noise.
 */
export async function seedUsersByCopy(sql: Sql, size: number): Promise<void> {
  await createMainMigrator(sql).up();
  await sql.unsafe(TABLES.map((t) => `alter table ${t} set (autovacuum_enabled = false);`).join('\n'));
  await sql.begin(async (tx) => {
    const users = await tx`copy users.users (id, username, score, score_base) from stdin`.writable();
    await pipeline(Readable.from(lines(size, (id) => `${id}\tuser-${id}\t${seedScore(id)}\t0`)), users);
    const profiles = await tx`copy users.user_profile (user_id, firstname, lastname) from stdin`.writable();
    await pipeline(Readable.from(lines(size, (id) => `${id}\tFirst${id}\tLast ${id % 1000}`)), profiles);
    await tx`select setval(pg_get_serial_sequence('users.users', 'id'), ${size}::int)`;
  });
  const [row] = await sql<[{ rows: number; tally: number | null; profiles: number; nextId: number }]>`
    select (select count(*)::int from users.users) as rows,
           (select users::int from users.tally) as tally,
           (select count(*)::int from users.user_profile) as profiles,
           (select last_value::int + 1 from users.users_id_seq) as "nextId"`;
  const problems = [
    row.rows === size ? '' : `${row.rows} users were loaded, not ${size}`,
    row.profiles === size ? '' : `${row.profiles} profiles were loaded, not ${size}`,
    row.tally === row.rows ? '' : `users.tally says ${row.tally} users, the table holds ${row.rows}`,
    row.nextId === size + 1 ? '' : `the next id would be ${row.nextId}, not ${size + 1}`,
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`seeding by COPY went wrong: ${problems.join('; ')}`);
  await sql.unsafe(`vacuum analyze ${[...TABLES, 'users.score_log', 'users.tally'].join(', ')}`);
}
