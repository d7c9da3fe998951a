import type { Db, TxSql } from '../../platform/db/connect.ts';
import { sqlState } from '../../platform/db/pg-errors.ts';
import { pipeline } from '../../platform/db/pipeline.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import type { Action, NewUser, User } from './user.ts';

/** The advisory lock key creations take turns on (the bytes of "users.cr", recognisable in pg_locks). */
const USER_CREATION_LOCK = '8463219666992391026';

interface UserRow {
  id: number;
  username: string;
  score: string;
  created: Date;
  updated: Date | null;
  firstname: string;
  lastname: string;
}

interface ActionRow {
  id: number;
  description: string;
  created: Date;
}

/** A unique violation on the username is the conflict USER.ALREADY_EXISTS; anything else passes through. */
function duplicateAsConflict(error: unknown, username: string): unknown {
  if (sqlState(error) !== '23505') return error;
  return new AppError('USER.ALREADY_EXISTS', `a user named "${username}" already exists`, {
    cause: error,
    details: { username },
  });
}

function userRowToUser(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    // The source system's score is a float in its JSON; the database keeps the exact numeric.
    score: Number(row.score),
    created: row.created.toISOString(),
    updated: row.updated ? row.updated.toISOString() : null,
    profile: { firstname: row.firstname, lastname: row.lastname },
  };
}

function actionRowToAction(row: ActionRow): Action {
  return { id: row.id, description: row.description, created: row.created.toISOString() };
}

/** How a creation treats the other users' scores: see SCORE_MODE in the README. */
export type FanOut = 'eager' | 'none' | 'logged';

/**
 * Creates the user, its profile and the action in one statement after the creation lock (one round trip).
 * `eager`: the fan-out to every other user runs in the same statement. `none`: no fan-out (a consumer applies it
 * later). `logged`: one row is appended to the score log instead (SCORE_MODE=deferred, see deferred-scores.ts):
 * a constant number of rows whatever the number of users. Returns the user and the number of other users at
 * this creation (the fan-out's n). A transaction-scoped advisory lock makes creations take turns, so each one
 * counts (and raises) every user committed before it and ids follow creation order (see docs/decisions/0004).
 * The caller owns the transaction.
 */
async function createUser(tx: TxSql, input: NewUser, fanOut: FanOut): Promise<{ user: User; others: number }> {
  try {
    const [, rows] = await pipeline([
      tx`select pg_advisory_xact_lock(${USER_CREATION_LOCK})`,
      tx<(UserRow & { others: number })[]>`
        with others as (
          select users::int as n from users.tally
        ), ${
          fanOut === 'logged'
            ? tx`head as (
          select k, a, b from users.score_log order by k desc limit 1
        ), step as (
          insert into users.score_log (k, n, a, b)
          select head.k + 1, others.n, head.a * (others.n + 1) / others.n, head.b + others.n / (head.a * (others.n + 1))
          from head cross join others where others.n > 0
          returning k
        ), new_user as (
          insert into users.users (username, score, score_base)
          select ${input.username}, ${String(input.score)}, coalesce((select k from step), head.k) from head
          returning id, username, score, created, updated
        ), `
            : tx`new_user as (
          insert into users.users (username, score) values (${input.username}, ${String(input.score)})
          returning id, username, score, created, updated
        ), `
        }profile as (
          insert into users.user_profile (user_id, firstname, lastname)
          select id, ${input.profile.firstname}, ${input.profile.lastname} from new_user
          returning firstname, lastname
        ), ${
          fanOut === 'eager'
            ? tx`fan_out as (
          update users.users u set score = trim_scale(1 + u.score + u.score / others.n), updated = now()
          from others where others.n > 0
        ), `
            : fanOut === 'none'
              ? tx`pending as (
          update users.tally set pending_fanouts = pending_fanouts + 1 from others where others.n > 0
        ), `
              : tx``
        }action as (
          insert into users.actions (description)
          select 'new user created with id ' || id || ' and username ' || username from new_user
        )
        select u.id, u.username, u.score::text as score, u.created, u.updated, p.firstname, p.lastname, others.n as others
        from new_user u cross join profile p cross join others`,
    ]);
    const row = rows[0]!;
    return { user: userRowToUser(row), others: row.others };
  } catch (error) {
    throw duplicateAsConflict(error, input.username);
  }
}

/**
 * Creates a user with its profile, gives every other user `score = 1 + score + score / n` (n = number of
 * other users) and records the action: one round trip, one set-based fan-out.
 */
export async function insertUserWithScoreFanOut(tx: TxSql, input: NewUser): Promise<User> {
  return (await createUser(tx, input, 'eager')).user;
}

/**
 * SCORE_MODE=deferred: creates the user, its profile and the action, and appends the creation's step to the
 * score log; no other user's row is touched, so a compaction running meanwhile never makes it wait.
 */
export async function insertUserLoggingFanOut(tx: TxSql, input: NewUser): Promise<User> {
  return (await createUser(tx, input, 'logged')).user;
}

/**
 * How reads find a score: `stored` as the row holds it (the eager modes keep it current), or `logged`: moved
 * from the row's base index to the log's head (SCORE_MODE=deferred), O(1) per row, the same answer to at
 * least twelve significant digits (docs/decisions/0031).
 */
export type ScoreRead = 'stored' | 'logged';

function userColumns(db: Db, read: ScoreRead) {
  return read === 'stored'
    ? db`u.id, u.username, u.score::text as score, u.created, u.updated, p.firstname, p.lastname
    from users.users u join users.user_profile p on p.user_id = u.id`
    : db`u.id, u.username,
      (case when u.score_base = h.k then u.score
            else round(u.score * (h.a / l.a) + h.a * (h.b - l.b), 24) end)::text as score,
      u.created, case when u.score_base = h.k then u.updated else h.created end as updated, p.firstname, p.lastname
    from users.users u join users.user_profile p on p.user_id = u.id
    join users.score_log l on l.k = u.score_base
    cross join (select k, a, b, created from users.score_log order by k desc limit 1) h`;
}

export async function findUserById(db: Db, id: number, read: ScoreRead = 'stored'): Promise<User | undefined> {
  const [row] = await db<UserRow[]>`select ${userColumns(db, read)} where u.id = ${id}`;
  return row ? userRowToUser(row) : undefined;
}

/**
 * Users in id order after `afterId`, with their profiles. The bound is given on both tables: the planner then
 * reads each index from the cursor on, where a merge join would read the profiles' from the first row.
 */
export async function listUsersAfter(
  db: Db,
  afterId: number,
  limit: number,
  read: ScoreRead = 'stored',
): Promise<User[]> {
  const rows = await db<UserRow[]>`
    select ${userColumns(db, read)}
    where u.id > ${afterId} and p.user_id > ${afterId}
    order by u.id
    limit ${limit}`;
  return rows.map(userRowToUser);
}

/** Actions newest first, before `beforeId` (all when undefined). */
export async function listActionsBefore(db: Db, beforeId: number | undefined, limit: number): Promise<Action[]> {
  const rows =
    beforeId === undefined
      ? await db<ActionRow[]>`select id, description, created from users.actions order by id desc limit ${limit}`
      : await db<
          ActionRow[]
        >`select id, description, created from users.actions where id < ${beforeId} order by id desc limit ${limit}`;
  return rows.map(actionRowToAction);
}

/**
 * SCORE_MODE=async: creates the user, its profile and the action without the fan-out, and returns n; the caller
 * writes a user.created event carrying n in the same transaction, and a consumer applies the fan-out later
 * (applyScoreFanOut): "the users before this creation" are exactly those with a smaller id.
 */
export function insertUserDeferringFanOut(tx: TxSql, input: NewUser): Promise<{ user: User; others: number }> {
  return createUser(tx, input, 'none');
}

/**
 * The fan-out of one creation, applied later by a consumer: every user created before `userId` gets
 * `score = 1 + score + score / others`, with the n of that creation. Applied in creation order, it gives
 * exactly the scores of the synchronous mode.
 */
export async function applyScoreFanOut(tx: TxSql, userId: number, others: number): Promise<number> {
  if (others === 0) return 0;
  const [result] = await pipeline([
    tx`update users.users set score = trim_scale(1 + score + score / ${others}::bigint), updated = now() where id < ${userId}`,
    tx`update users.tally set pending_fanouts = greatest(pending_fanouts - 1, 0)`,
  ]);
  return result.count;
}
