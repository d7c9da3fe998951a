import { randomUUID } from 'node:crypto';
import type { Sql, TxSql } from '../db/connect.ts';
import { currentDeadline, withDeadline } from '../db/deadline-scope.ts';
import { AppError } from '../errors/app-error.ts';
import type { FaultPoint } from '../faults.ts';
import type { Shard } from './shard-set.ts';

/** Every branch stratum prepares has a global transaction id starting with this. */
export const GID_PREFIX = 'stratum-2pc:';

export interface TwoPhaseOptions {
  /** Milliseconds until the work and the prepares must be done; after it, nothing is decided. */
  deadlineMs: number;
  fault?: FaultPoint;
  log?: (message: string, error?: unknown) => void;
}

/** A prepared transaction's name on one shard: unique per shard (several shards may share one server). */
function branchGid(gid: string, shardId: number): string {
  return `${gid}:${shardId}`;
}

/**
 * Real two-phase commit over several shards: `work` gets one open transaction per shard (in the order given),
 * every shard then runs PREPARE TRANSACTION, the decision 'commit' is recorded durably in the catalog (only
 * once every shard prepared, and only if recovery did not decide 'abort' first), then COMMIT PREPARED runs on
 * each. A failure before the decision rolls every branch back; a crash after it leaves in-doubt branches that
 * recoverInDoubt() commits. Either every shard changes or none does.
 *
 * No hold-and-wait: the branch connections are reserved one shard at a time in ascending shard id (so two
 * commits never wait on each other's connections in a cycle), each within the deadline (DB.POOL_EXHAUSTED
 * past it, nothing changed), and COMMIT PREPARED / ROLLBACK PREPARED run on those same connections: nothing
 * asks its pool for another connection while holding one.
 * @example await twoPhaseCommit(catalog, [from, to], async ([a, b]) => { ... }, { deadlineMs: 5000 });
 */
export async function twoPhaseCommit<T>(
  catalog: Sql,
  shards: readonly Shard[],
  work: (txs: TxSql[]) => Promise<T>,
  options: TwoPhaseOptions,
): Promise<T> {
  if (new Set(shards.map((s) => s.id)).size !== shards.length) throw new Error('twoPhaseCommit needs distinct shards');
  const deadline = Math.min(Date.now() + options.deadlineMs, currentDeadline() ?? Number.POSITIVE_INFINITY);
  return withDeadline(deadline, () => runTwoPhase(catalog, shards, work, options, deadline));
}

type Reserved = Awaited<ReturnType<Sql['reserve']>>;

async function runTwoPhase<T>(
  catalog: Sql,
  shards: readonly Shard[],
  work: (txs: TxSql[]) => Promise<T>,
  options: TwoPhaseOptions,
  deadline: number,
): Promise<T> {
  const fault = options.fault ?? (() => {});
  const gid = `${GID_PREFIX}${randomUUID()}`;
  const prepared = shards.map(() => false);
  const began = shards.map(() => false);
  const reserved: Array<Reserved | undefined> = shards.map(() => undefined);
  const byId = shards.map((_, i) => i).sort((a, b) => shards[a]!.id - shards[b]!.id);
  try {
    for (const i of byId) reserved[i] = await shards[i]!.sql.reserve();
    const conns = reserved as Reserved[];
    const left = () => Math.max(1, deadline - Date.now());
    await Promise.all(
      conns.map(async (conn, i) => {
        await conn`begin`;
        began[i] = true;
        await conn`select set_config('statement_timeout', ${String(left())}, true), set_config('lock_timeout', ${String(left())}, true),
        set_config('idle_in_transaction_session_timeout', ${String(left() + 1000)}, true)`;
      }),
    );
    const result = await work(conns as unknown as TxSql[]);
    if (Date.now() >= deadline)
      throw new AppError('TX.DEADLINE_EXCEEDED', 'the distributed transaction ran out of time before it could prepare');
    await Promise.all(
      conns.map(async (conn, i) => {
        await conn.unsafe(`prepare transaction '${branchGid(gid, shards[i]!.id)}'`);
        prepared[i] = true;
        began[i] = false;
      }),
    );
    fault('2pc:prepared');
    if (Date.now() >= deadline)
      throw new AppError('TX.DEADLINE_EXCEEDED', 'the distributed transaction ran out of time before its decision');
    const decision = await decide(
      catalog,
      gid,
      'commit',
      shards.map((s) => s.id),
    );
    if (decision !== 'commit')
      throw new AppError(
        'SHARD.UNAVAILABLE',
        'the distributed transaction was aborted by recovery before it could commit',
      );
    fault('2pc:decided');
    for (const [i, shard] of shards.entries()) {
      try {
        await conns[i]!.unsafe(`commit prepared '${branchGid(gid, shard.id)}'`);
      } catch (error) {
        // Decided: the branch commits when recovery reaches it. The caller's change is durable.
        options.log?.(`2pc ${gid}: commit prepared on shard ${shard.id} failed; recovery will finish it`, error);
      }
      prepared[i] = false;
      if (i === 0) fault('2pc:committed-one');
    }
    // Recovery deletes it later when this fails (every branch is finished).
    await catalog`delete from sharding.decisions where gid = ${gid}`.catch(() => {});
    return result;
  } catch (error) {
    // Not decided: undo every branch. One we cannot reach now is rolled back by recovery (no decision = abort).
    await Promise.all(
      shards.map(async (shard, i) => {
        try {
          if (began[i]) await reserved[i]!`rollback`;
          if (prepared[i]) await reserved[i]!.unsafe(`rollback prepared '${branchGid(gid, shard.id)}'`);
        } catch (undoError) {
          options.log?.(`2pc ${gid}: could not roll back on shard ${shard.id}; recovery will`, undoError);
        }
      }),
    );
    throw error;
  } finally {
    for (const conn of reserved) conn?.release();
  }
}

/** Records a decision unless one exists; returns the decision that stands. */
async function decide(
  catalog: Sql,
  gid: string,
  decision: 'commit' | 'abort',
  shardIds: number[],
): Promise<'commit' | 'abort'> {
  await catalog`insert into sharding.decisions (gid, decision, shard_ids) values (${gid}, ${decision}, ${shardIds}) on conflict (gid) do nothing`;
  const [row] = await catalog<
    { decision: 'commit' | 'abort' }[]
  >`select decision from sharding.decisions where gid = ${gid}`;
  return row!.decision;
}

export interface RecoveryReport {
  committed: string[];
  rolledBack: string[];
  /** In doubt, too young to abort (its coordinator may still be deciding). */
  waiting: string[];
}

/**
 * Finishes in-doubt branches on every shard: a recorded 'commit' commits, 'abort' rolls back, and a branch
 * with no decision older than `graceMs` gets 'abort' recorded (so a late coordinator cannot commit it) and
 * is rolled back. Run at start and periodically, on connections of its own (`catalog` a recovery pool, each
 * shard's `background`), so request pools held to their limit cannot starve it.
 */
export async function recoverInDoubt(
  catalog: Sql,
  shards: readonly Shard[],
  options: { graceMs: number; log?: (m: string, e?: unknown) => void },
): Promise<RecoveryReport> {
  const report: RecoveryReport = { committed: [], rolledBack: [], waiting: [] };
  for (const shard of shards) {
    const rows = await shard.background<{ gid: string; age_ms: number }[]>`
      select gid, (extract(epoch from (now() - prepared)) * 1000)::float8 as age_ms
      from pg_prepared_xacts where database = current_database() and gid like ${`${GID_PREFIX}%`}`;
    for (const row of rows) {
      const gid = row.gid.slice(0, row.gid.lastIndexOf(':'));
      const [known] = await catalog<
        { decision: 'commit' | 'abort' }[]
      >`select decision from sharding.decisions where gid = ${gid}`;
      let decision = known?.decision;
      if (!decision) {
        if (row.age_ms < options.graceMs) {
          report.waiting.push(row.gid);
          continue;
        }
        decision = await decide(catalog, gid, 'abort', [shard.id]);
      }
      try {
        await shard.background.unsafe(`${decision === 'commit' ? 'commit' : 'rollback'} prepared '${row.gid}'`);
        (decision === 'commit' ? report.committed : report.rolledBack).push(row.gid);
      } catch (error) {
        // 42704: another recoverer finished it meanwhile.
        if ((error as { code?: string }).code !== '42704')
          options.log?.(`2pc recovery: ${row.gid} on shard ${shard.id} failed`, error);
      }
    }
  }
  // Decisions whose branches are all finished are no longer needed.
  const left = new Set<string>();
  for (const shard of shards) {
    const rows = await shard.background<
      { gid: string }[]
    >`select gid from pg_prepared_xacts where database = current_database() and gid like ${`${GID_PREFIX}%`}`;
    for (const r of rows) left.add(r.gid.slice(0, r.gid.lastIndexOf(':')));
  }
  await catalog`delete from sharding.decisions where decided_at < now() - make_interval(secs => ${options.graceMs / 1000}) and not (gid = any(${[...left]}::text[]))`;
  return report;
}
