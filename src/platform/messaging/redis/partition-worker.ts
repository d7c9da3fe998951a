import { setTimeout as sleep } from 'node:timers/promises';
import type { OutboxEvent, Outcome, SubscribeOptions } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { deadLetterFields, eventFromFields, undecodableFromFields } from './entry-codec.ts';
import type { RedisStreamsKeys } from './keys.ts';
import { destroyClient, type Log, type RedisStreamsClient } from './redis-client.ts';
import { autoClaim, readGroup, type StreamEntry } from './stream-entries.ts';

export interface PartitionWorkerOptions {
  /** The worker's own connected client: it blocks on it, and destroys it when done. */
  connection: RedisStreamsClient;
  /** Sends CLIENT UNBLOCK on another connection, so a stop does not wait out a blocking read. */
  unblock: (clientId: number) => Promise<unknown>;
  keys: RedisStreamsKeys;
  group: string;
  /** This subscription's consumer name in the group (also the owner written in its leases). */
  consumer: string;
  partition: number;
  /** Decodes each entry by its own content type, whatever this codec writes. */
  codec: EventCodec;
  handle: SubscribeOptions['handle'];
  /** When given, consecutive events read together go to it in one call (the runner applies them in one transaction). */
  handleBatch?: SubscribeOptions['handleBatch'];
  /** How long an entry of another consumer stays pending before this one takes it over (XAUTOCLAIM). */
  claimIdleMs: number;
  batchSize: number;
  blockMs: number;
  /** The pause before entries are handled again after the handler threw or Redis failed. */
  retryDelayMs: number;
  now: () => Date;
  log: Log;
}

/**
 * `release`: the lease is still ours and goes to another consumer, so the entries read ahead are marked idle
 * for it to claim at once. `lost`: the lease is already someone else's, who may have claimed them: leave them.
 */
export type StopMode = 'release' | 'lost';

export interface PartitionWorker {
  /** Stops reading, lets the entry in hand finish and be acknowledged, then resolves. */
  stop(mode: StopMode): Promise<void>;
  /** Stops at once: nothing in hand is acknowledged and the connection is destroyed (a process that dies). */
  abandon(): void;
}

type HandleResult = 'done' | 'stopped' | 'failed';

/**
 * An entry as the worker sees it: an event to hand over; one no codec can read, to move to the dead letters
 * (as its placeholder) and acknowledge; or one deleted while pending, only to acknowledge.
 */
type Decoded =
  | { kind: 'event'; event: OutboxEvent }
  | { kind: 'undecodable'; placeholder: OutboxEvent; error: string }
  | { kind: 'deleted' };

/**
 * Serves one partition of a group while the caller holds its lease: first the backlog (this consumer's own
 * pending entries, then others' entries idle longer than claimIdleMs), waiting while entries that are not yet
 * claimable remain pending so no newer entry overtakes them; then new entries with a blocking XREADGROUP.
 * It reads the partition's replay stream alongside. Entries go to the handler one after another, or, with
 * `handleBatch`, the events of one read together; they are acknowledged (or dead-lettered and acknowledged)
 * in one MULTI before the next ones start. Entries are decoded by their own content type (an `event` field is
 * JSON); one that cannot be decoded goes to the group's dead letters as its placeholder (undecodableEvent),
 * with the reason and attempts 0, and is acknowledged, so the partition goes on and nothing is lost unseen.
 * @example const worker = startPartitionWorker({ connection, unblock, keys, group, consumer, partition: 3, codec, handle, ...timings, now, log });
 * await worker.stop('release');
 */
export function startPartitionWorker(o: PartitionWorkerOptions): PartitionWorker {
  const { connection, group, consumer, partition } = o;
  const eventsStream = o.keys.events(partition);
  const replayStream = o.keys.replay(group, partition);
  const streams = [eventsStream, replayStream];
  const pollMs = Math.max(20, Math.min(500, Math.floor(o.claimIdleMs / 4)));
  const pauses = new AbortController();
  let stopMode: StopMode | undefined;
  let abandoned = false;
  let clientId: number | undefined;
  let blocking = false;
  let done = false;
  let stopped: Promise<void> | undefined;
  // A function, not a comparison: the flags change while the worker awaits.
  const stopping = () => stopMode !== undefined || abandoned;
  const pause = (ms: number) => sleep(ms, undefined, { signal: pauses.signal }).catch(() => {});
  const where = `partition ${partition} of group ${group}`;

  async function readBacklog(): Promise<StreamEntry[] | 'caught-up' | 'waiting'> {
    const own = await readGroup(connection, group, consumer, streams, '0', { count: o.batchSize });
    if (own.length > 0) return own;
    for (const stream of streams) {
      const entries = await autoClaim(connection, stream, group, consumer, o.claimIdleMs, o.batchSize);
      if (entries.length > 0) return entries;
    }
    const pending = await Promise.all(streams.map((stream) => connection.xPending(stream, group)));
    return pending.every((p) => Number(p.pending) === 0) ? 'caught-up' : 'waiting';
  }

  async function readNew(): Promise<StreamEntry[]> {
    if (stopping()) return [];
    blocking = true;
    try {
      return await readGroup(connection, group, consumer, streams, '>', { count: o.batchSize, blockMs: o.blockMs });
    } finally {
      blocking = false;
    }
  }

  /** Acknowledges handled entries in one MULTI, after adding the dead letters among them; `events[i]` may be undefined (nothing to hand over). */
  async function settle(
    entries: StreamEntry[],
    events: Array<OutboxEvent | undefined>,
    outcomes: Outcome[],
  ): Promise<void> {
    const tx = connection.multi();
    entries.forEach((entry, i) => {
      const event = events[i];
      const outcome = outcomes[i]!;
      if (event && outcome.kind === 'dead-letter') {
        tx.xAdd(o.keys.deadLetters(group), '*', deadLetterFields(event, outcome.error, outcome.attempts, o.now()));
      }
    });
    for (const stream of streams) {
      const ids = entries.filter((e) => e.stream === stream).map((e) => e.id);
      if (ids.length === 0) continue;
      tx.xAck(stream, group, ids);
      // Only this group reads its replay stream: once handled, a replayed entry has no reader left.
      if (stream === replayStream) tx.xDel(stream, ids);
    }
    await tx.exec();
  }

  async function handBack(entries: StreamEntry[]): Promise<void> {
    if (abandoned || stopMode === 'lost' || entries.length === 0) return;
    for (const stream of streams) {
      const ids = entries.filter((e) => e.stream === stream).map((e) => e.id);
      // Still ours, but idle as if long forgotten: the next holder's XAUTOCLAIM takes them at once, in order.
      if (ids.length > 0) await connection.xClaimJustId(stream, group, consumer, 0, ids, { IDLE: o.claimIdleMs });
    }
  }

  function decode(entry: StreamEntry): Decoded {
    if (entry.fields === null) return { kind: 'deleted' };
    try {
      return { kind: 'event', event: eventFromFields(o.codec, entry.fields) };
    } catch (error) {
      return {
        kind: 'undecodable',
        placeholder: undecodableFromFields(entry.id, entry.fields),
        error: error instanceof Error ? error.message : String(error),
      };
    }
  }

  async function handleInOrder(entries: StreamEntry[]): Promise<HandleResult> {
    const decoded = entries.map(decode);
    for (let i = 0; i < entries.length;) {
      if (stopping()) {
        await handBack(entries.slice(i));
        return 'stopped';
      }
      const d = decoded[i]!;
      if (d.kind !== 'event') {
        // Nothing to hand over, and it must not block the partition: an entry deleted while pending is only
        // acknowledged; one no codec can read goes to the dead letters first, with the reason, so it is not lost.
        if (d.kind === 'undecodable') {
          await settle([entries[i]!], [d.placeholder], [{ kind: 'dead-letter', error: d.error, attempts: 0 }]);
          o.log(
            `redis streams broker: entry ${entries[i]!.id} of ${entries[i]!.stream} cannot be decoded (${d.error}); moved to the dead letters of group ${group}`,
          );
        } else {
          await settle([entries[i]!], [undefined], [{ kind: 'ack' }]);
        }
        i++;
        continue;
      }
      // The run of consecutive events from here: all of them with handleBatch, else just this one.
      let end = i + 1;
      if (o.handleBatch) while (end < entries.length && decoded[end]!.kind === 'event') end++;
      const run = entries.slice(i, end);
      const runEvents = decoded.slice(i, end).map((e) => (e as { event: OutboxEvent }).event);
      const deliveries = runEvents.map((event) => ({ event, partition }));
      let outcomes: Outcome[];
      try {
        outcomes = deliveries.length > 1 ? await o.handleBatch!(deliveries) : [await o.handle(deliveries[0]!)];
      } catch (error) {
        o.log(
          `redis streams broker: the handler of ${where} threw on event ${runEvents[0]!.id}${runEvents.length > 1 ? ` or one of the ${runEvents.length - 1} after it` : ''}; they stay pending and are handled again`,
          error,
        );
        return 'failed';
      }
      if (abandoned) return 'stopped';
      await settle(run, runEvents, outcomes);
      i = end;
    }
    return 'done';
  }

  async function run(): Promise<void> {
    let caughtUp = false;
    while (!stopping()) {
      try {
        clientId ??= await connection.clientId();
        if (!caughtUp) {
          const backlog = await readBacklog();
          if (backlog === 'caught-up') caughtUp = true;
          else if (backlog === 'waiting') await pause(pollMs);
          else if ((await handleInOrder(backlog)) === 'failed') await pause(o.retryDelayMs);
          continue;
        }
        if ((await handleInOrder(await readNew())) === 'failed') {
          caughtUp = false;
          await pause(o.retryDelayMs);
        }
      } catch (error) {
        if (stopping()) break;
        o.log(`redis streams broker: ${where} failed; reading its backlog again after a pause`, error);
        caughtUp = false;
        await pause(o.retryDelayMs);
      }
    }
  }

  const running = run().finally(() => {
    done = true;
  });

  async function finish(): Promise<void> {
    let unblocking: Promise<unknown> | undefined;
    while (!done && !abandoned) {
      // Repeated, one at a time: an UNBLOCK that reaches Redis before the read does is lost, and while Redis is
      // unreachable they would only pile up in the offline queue.
      if (blocking && clientId !== undefined && unblocking === undefined) {
        unblocking = o
          .unblock(clientId)
          .catch(() => {})
          .finally(() => {
            unblocking = undefined;
          });
      }
      await Promise.race([running, sleep(50)]);
    }
    destroyClient(connection);
  }

  return {
    stop(mode) {
      if (stopMode === undefined || mode === 'lost') stopMode = mode;
      pauses.abort();
      stopped ??= finish();
      return stopped;
    },
    abandon() {
      abandoned = true;
      pauses.abort();
      destroyClient(connection);
    },
  };
}
