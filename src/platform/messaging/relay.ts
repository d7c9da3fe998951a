import type { Sql } from '../db/connect.ts';
import type { Broker, OutboxEvent } from './broker.ts';
import { OUTBOX_CHANNEL } from './outbox.ts';

export interface RelayOptions {
  sql: Sql;
  broker: Broker;
  batchSize?: number;
  /** Fallback poll when no NOTIFY arrives (a missed notification, another writer). */
  pollMs?: number;
  /**
   * After a batch, the relay looks again at once, then, while it finds nothing, after lingerMs, twice that,
   * and so on up to pollMs: writers that saw the batch's events unsent did not NOTIFY (see addToOutbox).
   */
  lingerMs?: number;
  /** Sent rows older than this are deleted. */
  retentionMs?: number;
  log?: (message: string, error?: unknown) => void;
}

export interface Relay {
  /** Publishes one batch; returns how many events it sent (0: nothing to send, or another relay is active). */
  runOnce(): Promise<number>;
  start(): Promise<void>;
  /** Finishes the batch in hand, then stops. */
  stop(): Promise<void>;
}

interface OutboxRow { seq: string; id: string; type: string; key: string; payload: unknown; headers: Record<string, string>; created_at: Date }

/** One relay publishes at a time ("messaging relay" in ASCII); the others stand by, so order is kept. */
const RELAY_LOCK = '7809644330946618489';

/**
 * Moves committed outbox rows to the broker: claims a batch in seq order, publishes it (resolving only once
 * the broker has it), marks it sent, in one transaction. A relay killed after publishing and before its commit
 * leaves the rows unsent, so they are published again (at least once, never lost). Several relays may run:
 * an advisory lock lets one work at a time, so events keep their commit order. Wakes on NOTIFY, looks again
 * right after each batch and, lingering, a few times after that; polls as a fallback, and deletes sent rows
 * after the retention period. The mark commits without waiting for its WAL flush: the publish before it is
 * already durable, and a mark lost in a crash only means the batch is published again.
 * @example const relay = createRelay({ sql, broker }); await relay.start(); ... await relay.stop();
 */
export function createRelay(options: RelayOptions): Relay {
  const { sql, broker } = options;
  const batchSize = options.batchSize ?? 500;
  const pollMs = options.pollMs ?? 1000;
  const lingerMs = Math.min(options.lingerMs ?? 5, pollMs);
  const retentionMs = options.retentionMs ?? 24 * 3600_000;
  const log = options.log ?? (() => {});
  let running = false;
  /** A NOTIFY arrived since the current batch began: look again at once instead of waiting for the poll. */
  let notified = false;
  let wake: (() => void) | undefined;
  let loop: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let lastCleanup = 0;

  async function runOnce(): Promise<number> {
    return (await sql.begin(async (tx) => {
      const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${RELAY_LOCK}) as ok, set_config('synchronous_commit', 'off', true)`;
      if (!lock!.ok) return 0;
      const rows = await tx<OutboxRow[]>`
        select seq, id, type, key, payload, headers, created_at from messaging.outbox
        where sent_at is null order by seq limit ${batchSize} for update skip locked`;
      if (rows.length === 0) return 0;
      const events: OutboxEvent[] = rows.map((r) => ({
        id: r.id, type: r.type, key: r.key, payload: r.payload, headers: r.headers, createdAt: r.created_at.toISOString(),
      }));
      await broker.publish(events);
      await tx`update messaging.outbox set sent_at = now() where seq = any(${rows.map((r) => r.seq)}::bigint[])`;
      return rows.length;
    })) as number;
  }

  async function cleanup(): Promise<void> {
    if (Date.now() - lastCleanup < 60_000) return;
    lastCleanup = Date.now();
    await sql`delete from messaging.outbox where sent_at < now() - make_interval(secs => ${retentionMs / 1000})`;
  }

  async function run(): Promise<void> {
    let failures = 0;
    /** Empty looks since the last batch: the linger doubles with each, up to pollMs. */
    let idle = 0;
    while (running) {
      let sent = 0;
      notified = false;
      try {
        sent = await runOnce();
        failures = 0;
        await cleanup();
      } catch (error) {
        failures++;
        log('relay: publishing failed; will retry', error);
      }
      if (sent > 0) idle = 0;
      if ((sent > 0 || (notified && failures === 0)) && running) continue; // more may be waiting
      const waitMs = failures > 0 ? Math.min(pollMs * 2 ** Math.min(failures, 5), 30_000) : Math.min(pollMs, lingerMs * 2 ** idle++);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        wake = () => { clearTimeout(timer); resolve(); };
      });
      wake = undefined;
    }
  }

  return {
    runOnce,
    async start() {
      if (running) return;
      running = true;
      const listener = await sql.listen(OUTBOX_CHANNEL, () => { notified = true; wake?.(); });
      unlisten = () => listener.unlisten();
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      await unlisten?.();
    },
  };
}
