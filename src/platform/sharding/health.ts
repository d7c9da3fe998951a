import { withDeadline } from '../db/deadline-scope.ts';
import type { ShardSet } from './shard-set.ts';
import { GID_PREFIX } from './two-phase.ts';

/** What the shards look like right now, read on the recovery connections (never the request pools). */
export interface ShardHealth {
  /** Shards that did not answer `select 1` within the probe's time. */
  unreachable: Array<{ id: number; name: string; reason: string }>;
  /** Two-phase branches prepared and not yet committed or rolled back, over every reachable shard. */
  inDoubt: number;
  /** Sagas still running or compensating. */
  unfinishedSagas: number;
}

/**
 * Probes every shard and the catalog on their background connections, each within `timeoutMs`, all at once.
 * @example const { unreachable } = await probeShards(shards, 500);
 */
export async function probeShards(shards: ShardSet, timeoutMs: number): Promise<ShardHealth> {
  const within = <T>(work: () => Promise<T>) => withDeadline(Date.now() + timeoutMs, () => bounded(work(), timeoutMs));
  const perShard = await Promise.all(
    shards.all().map(async (shard) => {
      try {
        const [row] = await within(
          () => shard.background<{ n: number }[]>`
        select count(*)::int as n from pg_prepared_xacts where database = current_database() and gid like ${`${GID_PREFIX}%`}`,
        );
        return { shard, inDoubt: row!.n, reason: undefined };
      } catch (error) {
        return { shard, inDoubt: 0, reason: (error as Error).message };
      }
    }),
  );
  const [sagas] = await within(
    () => shards.catalogBackground<{ n: number }[]>`
    select count(*)::int as n from sharding.sagas where status in ('running', 'compensating')`,
  ).catch(() => [{ n: 0 }]);
  return {
    unreachable: perShard
      .filter((s) => s.reason !== undefined)
      .map((s) => ({ id: s.shard.id, name: s.shard.name, reason: s.reason! })),
    inDoubt: perShard.reduce((sum, s) => sum + s.inDoubt, 0),
    unfinishedSagas: sagas!.n,
  };
}

function bounded<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
