import type { Sql } from '../../platform/db/connect.ts';

/**
 * SCORE_MODE=deferred's log of fan-outs (docs/decisions/0031). Every creation maps each earlier user's score by
 * `s -> a*s + 1` with `a = 1 + 1/n`; the log keeps the running product A and sum B of those maps, so a user
 * stored at base index k reads `s * (A_head / A_k) + A_head * (B_head - B_k)`. Compaction folds the log into
 * the stored scores, a batch of users per statement, and trims the rows no user points at any more.
 */

/** The session advisory lock one compaction at a time holds (the bytes of "users.cp", recognisable in pg_locks). */
const COMPACTION_LOCK = '8463219666992394352';

/** Users updated per statement (and per transaction) of a compaction. */
export const COMPACTION_BATCH = 10_000;

export interface ScoreLogStatus {
  /** The head's index: how many logged creations there ever were. */
  head: number;
  /** The oldest row kept: every user's base is at or after it. */
  oldest: number;
  /** Creations logged and not yet folded into every user's stored score (head - oldest). */
  lag: number;
  /** Seconds since the oldest creation not yet folded in; 0 when none is pending. */
  lagSeconds: number;
  /** SCORE_MODE=async fan-outs committed and not yet applied: compaction waits for them. */
  pendingFanouts: number;
}

/** The log's length and lag: three index lookups, whatever the number of users. */
export async function scoreLogStatus(sql: Sql): Promise<ScoreLogStatus> {
  const [row] = await sql<{ head: string; oldest: string; pending: string; age: number | null }[]>`
    select (select max(k) from users.score_log) as head,
           (select min(k) from users.score_log) as oldest,
           (select pending_fanouts from users.tally) as pending,
           (select extract(epoch from now() - created)::float8 from users.score_log
             where k > (select min(k) from users.score_log) order by k limit 1) as age`;
  const head = Number(row!.head);
  const oldest = Number(row!.oldest);
  return {
    head,
    oldest,
    lag: head - oldest,
    lagSeconds: head > oldest ? Math.max(0, row!.age ?? 0) : 0,
    pendingFanouts: Number(row!.pending ?? 0),
  };
}

export interface CompactionProgress {
  /** The log index every user is being moved to. */
  target: number;
  /** Users ids covered so far, and the highest id there was when the run began. */
  doneThroughId: number;
  lastId: number;
  /** Users whose stored score this run rewrote so far. */
  moved: number;
}

export type CompactionResult =
  | { outcome: 'compacted'; target: number; moved: number; trimmed: number; batches: number }
  | { outcome: 'nothing pending'; target: number }
  | { outcome: 'busy'; reason: string };

export interface CompactOptions {
  batchSize?: number;
  onProgress?: (progress: CompactionProgress) => void;
  /** Checked between batches: a stopping process ends the run there (what is done stays done). */
  signal?: AbortSignal;
}

/**
 * Folds every logged creation up to the current head into the stored scores: for each batch of users by id,
 * one UPDATE sets score and base from the log (the row's score is the same before and after, to 24 decimal
 * places), then the log rows before the head are deleted. Runs on `sql`, a pool of its own (a saturated
 * request pool cannot starve it) whose statement timeout bounds each batch, one compaction at a time across processes (a session advisory lock; a
 * killed run's lock goes with its connection). Creations never wait on it: they update no other user's row.
 * A run stopped anywhere leaves every user's pair (score, base) consistent, so reads stay right and the next
 * run carries on.
 */
export async function compactScores(sql: Sql, options: CompactOptions = {}): Promise<CompactionResult> {
  const batchSize = options.batchSize ?? COMPACTION_BATCH;
  const session = await sql.reserve();
  try {
    const [lock] = await session<{ got: boolean }[]>`select pg_try_advisory_lock(${COMPACTION_LOCK}) as got`;
    if (!lock!.got) return { outcome: 'busy', reason: 'another compaction is running' };
    try {
      const [state] = await session<{ head: string; oldest: string; pending: string; last: number | null }[]>`
        select (select max(k) from users.score_log) as head, (select min(k) from users.score_log) as oldest,
               (select pending_fanouts from users.tally) as pending, (select max(id) from users.users) as last`;
      const target = Number(state!.head);
      if (Number(state!.pending) > 0)
        return {
          outcome: 'busy',
          reason: `${state!.pending} SCORE_MODE=async fan-outs are still to be applied; they precede the logged creations`,
        };
      if (Number(state!.oldest) === target) return { outcome: 'nothing pending', target };
      const lastId = state!.last ?? 0;
      let moved = 0;
      let batches = 0;
      for (let from = 0; from < lastId; from += batchSize) {
        if (options.signal?.aborted) throw options.signal.reason;
        const to = Math.min(from + batchSize, lastId);
        // One statement, so one transaction: a batch is folded in whole or not at all.
        const result = await session`
          update users.users u
          set score = trim_scale(round(u.score * (h.a / l.a) + h.a * (h.b - l.b), 24)),
              score_base = h.k, updated = h.created
          from users.score_log l, users.score_log h
          where h.k = ${target} and l.k = u.score_base
            and u.id > ${from} and u.id <= ${to} and u.score_base < ${target}`;
        moved += result.count;
        batches += 1;
        options.onProgress?.({ target, doneThroughId: to, lastId, moved });
      }
      // Only rows no user points at: a user written meanwhile by anything else keeps its base's row.
      const trimmed = await session`
        delete from users.score_log
        where k < least(${target}::bigint, (select min(score_base) from users.users))`;
      return { outcome: 'compacted', target, moved, trimmed: trimmed.count, batches };
    } finally {
      await session`select pg_advisory_unlock(${COMPACTION_LOCK})`.catch(() => undefined);
    }
  } finally {
    session.release();
  }
}
