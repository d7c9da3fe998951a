import type { Sql } from '../db/connect.ts';
import type { Broker, ClaimedOutboxRow, OutboxAppender, OutboxEvent } from './broker.ts';
import { OUTBOX_CHANNEL } from './outbox.ts';
import { createWakeGate, type WakeGate } from './relay-wake.ts';

export interface RelayOptions {
  /** The relay's connections, on the database of the outbox: best a pool of its own, so busy request pools cannot starve it. */
  sql: Sql;
  /**
   * The pool the outbox's writers and the broker know it by, when `sql` is the relay's own pool on that database:
   * a broker whose log is on it takes each batch inside the relay's transaction. Default: `sql`.
   */
  outboxPool?: Sql;
  broker: Broker;
  batchSize?: number;
  /** Fallback poll when no NOTIFY arrives (a missed notification, another writer). */
  pollMs?: number;
  /** While it finds nothing, the relay looks again after lingerMs, twice that, and so on up to pollMs. */
  lingerMs?: number;
  /** Sent rows older than this are deleted. */
  retentionMs?: number;
  log?: (message: string, error?: unknown) => void;
  /** Told how many events each batch published (for the relay rate the metrics show). */
  onSent?: (count: number) => void;
}

export interface Relay {
  /** Publishes one batch; returns how many events it sent (0: nothing to send, or another relay is active). */
  runOnce(): Promise<number>;
  start(): Promise<void>;
  /** Finishes the batch in hand, then stops. */
  stop(): Promise<void>;
}

interface OutboxRow {
  seq: string;
  id: string;
  type: string;
  key: string;
  payload: unknown;
  headers: Record<string, string>;
  created_at: Date;
}

/** While writers that left the waking to this relay are still open, it checks on them after 5 ms, 10, 20, ... up to pollMs. */
const SETTLE_CHECK_MS = 5;

/** One relay publishes at a time ("messaging relay" in ASCII); the others stand by, so order is kept. */
const RELAY_LOCK = '7809644330946618489';

/**
 * Moves committed outbox rows to the broker: claims a batch in seq order and marks it sent, publishes it
 * (resolving only once the broker has it), and commits, in one transaction. A relay killed after publishing and before its commit
 * leaves the rows unsent, so they are published again (at least once, never lost). Several relays may run:
 * an advisory lock lets one work at a time, so events keep their commit order. Wakes on NOTIFY; while it finds
 * work it stays awake (writers do not NOTIFY then, see relay-wake.ts) and looks again after each batch; polls
 * as a fallback, and deletes sent rows after the retention period. The mark commits without waiting for its WAL flush: the publish before it is
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
  let gate: WakeGate | undefined;

  // A broker whose log is in this very database takes the batch inside the relay's transaction.
  const appender = broker.outboxAppender?.sql === (options.outboxPool ?? sql) ? broker.outboxAppender : undefined;

  /**
   * Claims, marks and appends in one transaction with the log's broker (see OutboxAppender), in two round trips
   * on a connection of its own: BEGIN and the claim (with the relay's lock) in one message, then the append
   * with the COMMIT queued right behind it. Should the append fail, PostgreSQL answers that COMMIT with a
   * rollback: the mark and the append go together.
   *
   * The commit does not wait for its WAL flush. A crash may lose it, but only whole: the rows are unsent again
   * and published again. Nothing durable can have come of the lost log rows, since WAL is flushed in order: a
   * consumer's synchronous commit of an effect (or any later flush) makes this earlier commit durable first.
   */
  async function appendOnce(using: OutboxAppender): Promise<number> {
    const conn = await sql.reserve();
    let inTransaction = false;
    try {
      // One simple-protocol message (no parameters: the values are numbers of this module): if BEGIN fails,
      // the claim does not run, so it can never mark rows outside a transaction.
      inTransaction = true;
      const [, claimed] = (await conn.unsafe(`begin;
        update messaging.outbox o set sent_at = now()
        from (
          select seq from messaging.outbox
          where sent_at is null and (select pg_try_advisory_xact_lock(${RELAY_LOCK}))
          order by seq limit ${batchSize} for update skip locked
        ) claimed, (select set_config('synchronous_commit', 'off', true)) async_commit
        where o.seq = claimed.seq
        returning o.seq, o.key`)) as unknown as [unknown, ClaimedOutboxRow[]];
      if (claimed.length === 0) {
        await conn`commit`;
        inTransaction = false;
        return 0;
      }
      // `returning` promises no order.
      claimed.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
      // Sent in this order (execute() sends at once; an await would send a moment later, after the COMMIT).
      const appending = using.appendFromOutbox(conn, claimed).execute();
      const committing = conn`commit`.execute();
      committing.catch(() => {}); // awaited below, once the append has settled
      const appended = await appending;
      const committed = await committing;
      inTransaction = false;
      if (committed.command !== 'COMMIT')
        throw new Error(`relay: the append's transaction ended in ${committed.command}`);
      if (appended.length !== claimed.length)
        log(`relay: appended ${appended.length} of ${claimed.length} claimed events`);
      return claimed.length;
    } catch (error) {
      // A failed append already rolled back with its queued COMMIT; anything else is rolled back here.
      if (inTransaction) await conn`rollback`.catch(() => {});
      throw error;
    } finally {
      conn.release();
    }
  }

  async function runOnce(): Promise<number> {
    if (appender) return appendOnce(appender);
    return (await sql.begin(async (tx) => {
      const [lock] = await tx<
        { ok: boolean }[]
      >`select pg_try_advisory_xact_lock(${RELAY_LOCK}) as ok, set_config('synchronous_commit', 'off', true)`;
      if (!lock!.ok) return 0;
      // Claimed and marked in one statement; the mark commits only after the broker has the events.
      const rows = await tx<OutboxRow[]>`
        update messaging.outbox o set sent_at = now()
        from (select seq from messaging.outbox where sent_at is null order by seq limit ${batchSize} for update skip locked) claimed
        where o.seq = claimed.seq
        returning o.seq, o.id, o.type, o.key, o.payload, o.headers, o.created_at`;
      if (rows.length === 0) return 0;
      // `returning` promises no order.
      rows.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
      const events: OutboxEvent[] = rows.map((r) => ({
        id: r.id,
        type: r.type,
        key: r.key,
        payload: r.payload,
        headers: r.headers,
        createdAt: r.created_at.toISOString(),
      }));
      await broker.publish(events);
      return rows.length;
    })) as number;
  }

  /**
   * Deletes sent rows past the retention from the oldest, along the primary key, 10,000 rows at a time (the
   * outbox has no index on sent_at: every index costs the relay's mark an insert), until a chunk has nothing to
   * delete.
   */
  async function cleanup(): Promise<void> {
    if (Date.now() - lastCleanup < 60_000) return;
    lastCleanup = Date.now();
    for (let chunk = 0; chunk < 100 && running; chunk++) {
      const deleted = await sql`
        with oldest as (select seq from messaging.outbox order by seq limit 10000)
        delete from messaging.outbox o using oldest
        where o.seq = oldest.seq and o.sent_at < now() - make_interval(secs => ${retentionMs / 1000})`;
      if (deleted.count === 0) break;
    }
  }

  async function run(wakeGate: WakeGate): Promise<void> {
    let failures = 0;
    /** Empty looks in a row: the wait doubles with each, from lingerMs up to pollMs. */
    let idle = 0;
    let awake = false;
    /** AWAKE was let go: writers that saw it held may still be committing, so look again once they have. */
    let lookAgain = false;
    let settleChecks = 0;
    while (running) {
      let sent = 0;
      notified = false;
      try {
        sent = await runOnce();
        failures = 0;
        if (sent > 0) options.onSent?.(sent);
        await cleanup();
      } catch (error) {
        failures++;
        log('relay: publishing failed; will retry', error);
      }
      if (!running) break;
      if (sent > 0) {
        idle = 0;
        if (!awake) awake = await wakeGate.stayAwake();
        continue; // more may be waiting, and writers that saw this relay awake did not NOTIFY
      }
      if (failures === 0 && notified) continue;
      // Nothing found, or publishing fails (the broker is down): writers wake the relay again, so that it tries
      // again as soon as something new commits, as well as on its backoff.
      if (awake) {
        await wakeGate.sleep();
        awake = false;
        lookAgain = true;
        settleChecks = 0;
      }
      if (failures === 0 && lookAgain && (await wakeGate.writersSettled())) {
        lookAgain = false;
        continue; // the last look: every writer that left the waking to this relay has committed
      }
      const waitMs =
        failures > 0
          ? Math.min(pollMs * 2 ** Math.min(failures, 5), 30_000)
          : lookAgain
            ? Math.min(pollMs, SETTLE_CHECK_MS * 2 ** Math.min(settleChecks++, 20))
            : Math.min(pollMs, lingerMs * 2 ** Math.min(idle++, 20));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    if (awake) await wakeGate.sleep();
  }

  return {
    runOnce,
    async start() {
      if (running) return;
      running = true;
      const listener = await sql.listen(OUTBOX_CHANNEL, () => {
        notified = true;
        wake?.();
      });
      unlisten = () => listener.unlisten();
      gate = createWakeGate(sql);
      loop = run(gate);
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      await gate?.close();
      await unlisten?.();
    },
  };
}
