import type { Db, TxSql } from '../db/connect.ts';
import { inSpan, SpanKind } from '../observability/tracing.ts';
import type { TransactionFn } from '../db/transaction.ts';
import type { Broker, Delivery, OutboxEvent, Outcome, Subscription } from './broker.ts';
import { UNDECODABLE } from './codec/event-codec.ts';

export interface ConsumeOptions {
  broker: Broker;
  transaction: TransactionFn;
  group: string;
  /** The effect: runs inside a transaction that also records the event as processed for this group. */
  handler: (event: OutboxEvent, tx: TxSql) => Promise<void>;
  /**
   * Says why an event must not be handled at all (a payload off its type's schema): it goes to the group's dead
   * letters at once with that reason, without an attempt, and the partition goes on.
   */
  reject?: (event: OutboxEvent) => string | undefined;
  /** Attempts before the event goes to the group's dead letters. */
  maxAttempts?: number;
  /** Backoff before attempt n+1: base * 2^(n-1), with full jitter, capped. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  onError?: (event: OutboxEvent, attempt: number, error: unknown) => void;
  /**
   * Handler transactions that may be open at once. Deliveries handed over while they are all busy (by other
   * partitions) wait, and then go together in ONE transaction. Default 2. After such a transaction failed, each
   * partition's retries run on their own, outside this count.
   */
  transactionsAtOnce?: number;
  /** Deliveries of several partitions put together in one transaction, at most (one partition's batch may be more). Default 500. */
  togetherUpTo?: number;
}

/**
 * Consumes a group's events with exactly-once effects on at-least-once delivery: the handler's transaction
 * inserts (group, event id) into processed_messages first; an event seen before is acknowledged without running
 * the handler again. Failures retry in place with exponential backoff (the partition waits, so order holds);
 * after `maxAttempts` the event goes to the group's dead letters with the last error.
 * At most `transactionsAtOnce` handler transactions are open at once; what partitions hand over meanwhile is
 * applied together in the next one (a group commit: under load, fewer and larger transactions). Should that
 * transaction fail, each partition's deliveries are handled on their own again, so a failing event only ever
 * holds up its own partition.
 * When the handler's transactions run on the PostgreSQL server that holds the broker's log (the PostgreSQL broker
 * on stratum's own database), they commit without waiting for the WAL flush: see `sharesWalWithLog`.
 * @example const sub = await consume({ broker, transaction, group: 'scores', handler: (e, tx) => applyFanOut(tx, e) });
 */
export async function consume(options: ConsumeOptions): Promise<Subscription> {
  const maxAttempts = options.maxAttempts ?? 5;
  const base = options.baseBackoffMs ?? 100;
  const cap = options.maxBackoffMs ?? 5000;
  const random = options.random ?? Math.random;
  const transactionsAtOnce = Math.max(1, options.transactionsAtOnce ?? 2);
  const togetherUpTo = Math.max(1, options.togetherUpTo ?? 500);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

  const lazyCommit = await sharesWalWithLog(options);
  // One statement either way; with lazyCommit it also tells this transaction's COMMIT not to wait for the flush.
  const LAZY = `(select set_config('synchronous_commit', 'off', true)) as lazy_commit`;
  const lazyFrom = (tx: TxSql) => tx.unsafe(lazyCommit ? `from ${LAZY}` : '');
  const lazyJoin = (tx: TxSql) => tx.unsafe(lazyCommit ? `cross join ${LAZY}` : '');

  /** onError is the caller's: if it throws, that must not stop a partition or leave deliveries unsettled. */
  function tellError(event: OutboxEvent, attempt: number, error: unknown): void {
    try {
      options.onError?.(event, attempt, error);
    } catch {
      // nothing to do: the failure itself is handled (retried or dead-lettered) either way
    }
  }

  /**
   * Runs the handling of `events` in a consumer span that continues the trace the first traced one carries
   * (`traceparent` in its headers, put there by the outbox); untraced events make no trace of their own.
   */
  function inConsumeSpan<T>(events: readonly OutboxEvent[], fn: () => Promise<T>): Promise<T> {
    const first = events.find((e) => typeof e.headers?.traceparent === 'string');
    if (!first) return fn();
    return inSpan(
      `consume ${options.group}`,
      {
        kind: SpanKind.CONSUMER,
        parentHeaders: first.headers,
        attributes: {
          'messaging.consumer.group.name': options.group,
          'messaging.message.id': first.id,
          'stratum.event.type': first.type,
          ...(events.length > 1 ? { 'messaging.batch.message_count': events.length } : {}),
        },
      },
      fn,
    );
  }

  function handleOnce(event: OutboxEvent): Promise<void> {
    return inConsumeSpan([event], () => handleOnceTraced(event));
  }

  async function handleOnceTraced(event: OutboxEvent): Promise<void> {
    await options.transaction({ label: `consume.${options.group}` }, async (tx) => {
      const fresh = await tx`insert into messaging.processed_messages (consumer_group, message_id)
        select ${options.group}, ${event.id}::uuid ${lazyFrom(tx)} on conflict do nothing returning 1`;
      if (fresh.length === 0) return; // delivered again: the effect is already committed
      await options.handler(event, tx);
    });
  }

  /** `failed`: the delivery's first attempt already failed (inside a batch), with this error. */
  async function handle(delivery: Delivery, failed?: { error: unknown }): Promise<Outcome> {
    let lastError: unknown = failed?.error;
    for (let attempt = failed ? 2 : 1; attempt <= maxAttempts; attempt++) {
      if (attempt > 1) await sleep(Math.min(cap, base * 2 ** (attempt - 2)) * random());
      try {
        await handleOnce(delivery.event);
        return { kind: 'ack' };
      } catch (error) {
        lastError = error;
        tellError(delivery.event, attempt, error);
      }
    }
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    return { kind: 'dead-letter', error: message, attempts: maxAttempts };
  }

  /**
   * Consecutive deliveries of one partition in ONE transaction: one insert into processed_messages for all of
   * them, the handler for each that is new, one commit. If anything fails, they are handled one at a time,
   * which retries and, if need be, dead-letters exactly the failing event; the attempt that failed in the
   * batch counts as that event's first.
   */
  async function handleBatch(deliveries: Delivery[]): Promise<Outcome[]> {
    if (deliveries.length === 1) return [await handle(deliveries[0]!)];
    const failed = await applyTogether(deliveries);
    return failed === 'none' ? deliveries.map(() => ({ kind: 'ack' }) as const) : oneAtATime(deliveries, failed);
  }

  /**
   * Applies `deliveries` in one transaction. 'none' when it committed; else the failure: the index and error of
   * the handler that failed (its first attempt, already told to onError), or undefined when something else did.
   */
  async function applyTogether(
    deliveries: Delivery[],
  ): Promise<'none' | { index: number; error: unknown } | undefined> {
    let failed: { index: number; error: unknown } | undefined;
    try {
      const events = deliveries.map((d) => d.event);
      await inConsumeSpan(events, () =>
        options.transaction({ label: `consume.${options.group}` }, async (tx) => {
          const ids = deliveries.map((d) => d.event.id);
          const fresh = new Set(
            (
              await tx<{ message_id: string }[]>`insert into messaging.processed_messages (consumer_group, message_id)
          select ${options.group}, id from unnest(${ids}::uuid[]) as t(id) ${lazyJoin(tx)} on conflict do nothing returning message_id`
            ).map((r) => r.message_id),
          );
          for (const [index, d] of deliveries.entries()) {
            if (!fresh.delete(d.event.id)) continue; // seen before (or twice in this batch): no second effect
            try {
              await options.handler(d.event, tx);
            } catch (error) {
              failed = { index, error };
              throw error;
            }
          }
        }),
      );
      return 'none';
    } catch (error) {
      // A lone delivery's failure of any kind counts as its attempt, as in handle().
      if (!failed && deliveries.length === 1) failed = { index: 0, error };
      if (failed) tellError(deliveries[failed.index]!.event, 1, failed.error);
      return failed;
    }
  }

  /** One delivery at a time, each with its retries; the one that failed inside a batch has had its first attempt. */
  async function oneAtATime(
    deliveries: Delivery[],
    failed: { index: number; error: unknown } | undefined,
  ): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    for (const [i, d] of deliveries.entries()) outcomes.push(await handle(d, i === failed?.index ? failed : undefined));
    return outcomes;
  }

  /** Deliveries handed over (one partition's, in order) waiting for a transaction. */
  interface Waiting {
    deliveries: Delivery[];
    settle: (outcomes: Promise<Outcome[]>) => void;
  }
  const waiting: Waiting[] = [];
  let open = 0;

  /** What the adapter calls: the deliveries wait for a free transaction and share it with whatever else waits. */
  function handOver(deliveries: Delivery[]): Promise<Outcome[]> {
    return new Promise<Outcome[]>((resolve) => {
      waiting.push({ deliveries, settle: resolve });
      startWaiting();
    });
  }

  function startWaiting(): void {
    while (open < transactionsAtOnce && waiting.length > 0) {
      let count = 0;
      let take = 0;
      while (take < waiting.length && (take === 0 || count + waiting[take]!.deliveries.length <= togetherUpTo))
        count += waiting[take++]!.deliveries.length;
      const taken = waiting.splice(0, take);
      open++;
      void runTogether(taken);
    }
  }

  /**
   * One transaction for all of `taken`. If it fails, the transaction slot is given back first and each partition's
   * deliveries are handled on their own (retries and backoff included) outside it: the one holding the failed
   * event one at a time, the others again as a batch of their own.
   */
  async function runTogether(taken: Waiting[]): Promise<void> {
    let failed: Awaited<ReturnType<typeof applyTogether>>;
    try {
      failed = await applyTogether(taken.flatMap((w) => w.deliveries));
    } finally {
      open--;
      startWaiting();
    }
    let from = 0;
    for (const w of taken) {
      const to = from + w.deliveries.length;
      const holdsFailed = failed !== 'none' && failed !== undefined && failed.index >= from && failed.index < to;
      w.settle(
        failed === 'none'
          ? Promise.resolve(w.deliveries.map(() => ({ kind: 'ack' }) as const))
          : holdsFailed
            ? oneAtATime(w.deliveries, { index: failed!.index - from, error: failed!.error })
            : taken.length === 1
              ? oneAtATime(w.deliveries, undefined)
              : handleBatch(w.deliveries),
      );
      from = to;
    }
  }

  /**
   * The deliveries `reject` refuses are dead-lettered at once; what a dead letter kept of an unreadable message
   * (a replay of it) is acknowledged unseen, as no handler has a use for it; the rest are handed over, in order.
   */
  async function screened(deliveries: Delivery[]): Promise<Outcome[]> {
    const verdicts: Array<Outcome | undefined> = deliveries.map((d) => {
      if (d.event.type === UNDECODABLE) return { kind: 'ack' };
      const reason = options.reject?.(d.event);
      return reason === undefined ? undefined : { kind: 'dead-letter', error: reason, attempts: 0 };
    });
    if (verdicts.every((v) => v === undefined)) return handOver(deliveries);
    const accepted = deliveries.filter((_, i) => verdicts[i] === undefined);
    const outcomes = accepted.length > 0 ? await handOver(accepted) : [];
    let next = 0;
    return verdicts.map((verdict) => verdict ?? outcomes[next++]!);
  }

  return options.broker.subscribe(options.group, {
    handle: (d) => screened([d]).then((o) => o[0]!),
    handleBatch: screened,
  });
}

/**
 * Whether the handler's transactions commit into the same WAL as the broker's acknowledgements: only the
 * PostgreSQL broker keeps its log and positions in PostgreSQL, and then only when `transaction` runs on that same
 * server. Then the handler's COMMIT need not wait for its WAL flush: a crash loses a suffix of the one WAL, so an
 * effect (with its processed_messages row) can be lost only together with the acknowledgement written after it,
 * and the event is delivered again. Any other broker acknowledges outside that WAL, and the commit must be
 * durable before the acknowledgement.
 */
async function sharesWalWithLog(options: ConsumeOptions): Promise<boolean> {
  const log = options.broker.outboxAppender?.sql;
  if (!log) return false;
  // One running server: its port and the instant its postmaster started.
  const identify = async (db: Db) =>
    (await db<{ id: string }[]>`select current_setting('port') || '@' || pg_postmaster_start_time()::text as id`)[0]!
      .id;
  const [mine, theirs] = await Promise.all([
    options.transaction({ label: `consume.${options.group}.server`, readOnly: true }, (tx) => identify(tx)),
    identify(log),
  ]);
  return mine === theirs;
}
