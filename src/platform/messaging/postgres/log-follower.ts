import type { Sql } from '../../db/connect.ts';
import type { FollowOptions, OutboxEvent, Subscription } from '../broker.ts';
import type { LogNews } from './log-news.ts';

export interface LogFollowerOptions {
  sql: Sql;
  namespace: string;
  news: LogNews;
  /** How long it waits for a NOTIFY before it looks again anyway. */
  pollMs: number;
  batchSize: number;
  log: (message: string, error?: unknown) => void;
}

/**
 * Follows the PostgreSQL log from its end, in this process only: a cursor on `seq` kept in memory, no row
 * anywhere. Publishers append under one advisory lock, so rows commit in seq order and reading `seq > cursor`
 * never skips a late commit. Replays (rows for one group) are left out. The log is trimmed only behind every
 * group, so a follower cut off from the database for a while may find rows gone: after a failed read it
 * reports a gap.
 * @example const follower = await followLog({ sql, namespace: 'stratum', news, pollMs: 500, batchSize: 500, log }, { onEvents, onGap });
 */
export async function followLog(o: LogFollowerOptions, listener: FollowOptions): Promise<Subscription> {
  const { sql } = o;
  // Newest first along the primary key: max(seq) would read the whole namespace.
  const [end] = await sql<
    { seq: string }[]
  >`select seq::text from messaging.log where namespace = ${o.namespace} order by seq desc limit 1`;
  let cursor = end?.seq ?? '0';
  let running = true;
  const stopping = new AbortController();

  async function run(): Promise<void> {
    let failed = false;
    while (running) {
      const seen = o.news.seen('any');
      let taken = 0;
      try {
        const rows = await sql<Array<{ seq: string; event: OutboxEvent }>>`
          select seq, event from messaging.log
          where namespace = ${o.namespace} and seq > ${cursor} and target_group is null
          order by seq limit ${o.batchSize}`;
        if (failed) {
          failed = false;
          listener.onGap();
        }
        taken = rows.length;
        if (taken > 0) {
          cursor = rows.at(-1)!.seq;
          listener.onEvents(rows.map((r) => r.event));
        }
      } catch (error) {
        if (!running) break;
        failed = true;
        o.log(`log follower: reading the log failed; will report a gap once it reads again`, error);
      }
      if (taken < o.batchSize && running) await o.news.wait('any', seen, o.pollMs, stopping.signal);
    }
  }

  const loop = run();
  return {
    async stop() {
      running = false;
      stopping.abort();
      await loop;
    },
  };
}
