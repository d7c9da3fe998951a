import type { Sql } from '../../src/platform/db/connect.ts';
import type { ListedUser } from './http-client.ts';

/** Two scores count as equal when they differ by at most this much, relative to the larger. */
export const RELATIVE_TOLERANCE = 1e-12;

/**
 * The eager mode's arithmetic, applied user by user in PostgreSQL: for each creation after the user (ids in
 * `created`, in creation order; the i-th saw `first_n + i - 1` other users), `trim_scale(1 + s + s / n)` with
 * n an int, exactly the expression and types of the eager fan-out (users-repository.ts). Costs
 * users x creations steps, so it is for a sample.
 */
const EAGER_SCORES = `
create schema if not exists bench;
create or replace function bench.eager_scores(ids int[], starts numeric[], created int[], first_n int)
returns table (id int, score text) language plpgsql as $$
declare
  s numeric;
begin
  for j in 1 .. coalesce(array_length(ids, 1), 0) loop
    s := starts[j];
    for i in 1 .. coalesce(array_length(created, 1), 0) loop
      if created[i] > ids[j] then
        s := trim_scale(1 + s + s / (first_n + i - 1));
      end if;
    end loop;
    id := ids[j];
    score := s::text;
    return next;
  end loop;
end
$$;`;

export interface ScoreCheck {
  users: number;
  /** The largest relative difference seen (0 when every score is equal as a double). */
  worst: number;
  /** Users whose score is off by more than RELATIVE_TOLERANCE, or whose fields differ, described. */
  mismatches: string[];
}

function relativeDifference(a: number, b: number): number {
  const scale = Math.max(Math.abs(a), Math.abs(b));
  return scale === 0 ? 0 : Math.abs(a - b) / scale;
}

/**
 * The eager mode's scores of `users`, recomputed from each one's starting score (`startOf`) and the creations the
 * database at `sql` holds: every user with an id above `size` is a creation, and the i-th of them (by id) saw
 * `size + i - 1` other users. Returns each user's score as PostgreSQL's numeric text, by id.
 */
export async function eagerScores(
  sql: Sql,
  size: number,
  users: readonly ListedUser[],
  startOf: (user: ListedUser) => string,
): Promise<Map<number, string>> {
  await sql.unsafe(EAGER_SCORES);
  const [{ created }] = await sql<[{ created: number[] | null }]>`
    select array_agg(id order by id) as created from users.users where id > ${size}`;
  const unique = [...new Map(users.map((u) => [u.id, u])).values()];
  const rows = await sql<{ id: number; score: string }[]>`
    select id, score from bench.eager_scores(
      ${unique.map((u) => u.id)}::int[], ${unique.map(startOf)}::numeric[], ${created ?? []}::int[], ${size}::int)`;
  return new Map(rows.map((r) => [r.id, r.score]));
}

/** Checks the scores GET /users gave for `listed` against `expected` (from eagerScores), relative RELATIVE_TOLERANCE. */
export function checkScores(listed: readonly ListedUser[], expected: ReadonlyMap<number, string>): ScoreCheck {
  const check: ScoreCheck = { users: listed.length, worst: 0, mismatches: [] };
  for (const user of listed) {
    const want = expected.get(user.id);
    const diff = want === undefined ? Number.NaN : relativeDifference(user.score, Number(want));
    if (!Number.isNaN(diff)) check.worst = Math.max(check.worst, diff);
    if (!(diff <= RELATIVE_TOLERANCE))
      check.mismatches.push(
        `user ${user.id}: GET /users says ${user.score}, the eager mode ${want ?? 'has no such user'}`,
      );
  }
  return check;
}

/** Checks that two modes listed the same users with the same fields and scores (relative RELATIVE_TOLERANCE). */
export function comparePages(a: readonly ListedUser[], b: readonly ListedUser[]): ScoreCheck {
  const check: ScoreCheck = { users: a.length, worst: 0, mismatches: [] };
  if (a.length !== b.length) check.mismatches.push(`the pages hold ${a.length} and ${b.length} users`);
  for (const [i, x] of a.entries()) {
    const y = b[i];
    if (!y) break;
    const same =
      x.id === y.id &&
      x.username === y.username &&
      x.profile.firstname === y.profile.firstname &&
      x.profile.lastname === y.profile.lastname;
    if (!same) {
      check.mismatches.push(`row ${i}: ${JSON.stringify(x)} against ${JSON.stringify(y)}`);
      continue;
    }
    const diff = relativeDifference(x.score, y.score);
    check.worst = Math.max(check.worst, diff);
    if (!(diff <= RELATIVE_TOLERANCE)) check.mismatches.push(`user ${x.id}: ${x.score} against ${y.score}`);
  }
  return check;
}
