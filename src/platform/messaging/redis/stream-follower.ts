import type { FollowOptions, OutboxEvent, Subscription } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { eventFromFields } from './entry-codec.ts';
import { destroyClient, type Log, type RedisStreamsClient } from './redis-client.ts';
import { readStreams } from './stream-entries.ts';

export interface StreamFollowerOptions {
  /** The follower's own connected client: it blocks on it, and destroys it when done. */
  connection: RedisStreamsClient;
  /** Every partition's events stream. */
  streams: readonly string[];
  /** Decodes each entry by its own content type, whatever this codec writes. */
  codec: EventCodec;
  batchSize: number;
  blockMs: number;
  retryDelayMs: number;
  log: Log;
}

/**
 * Follows every partition's stream from its current end with plain XREAD: no consumer group, nothing written
 * to Redis, so a follower that dies leaves nothing behind. The last id read per stream is kept in memory, so a
 * lost connection misses nothing while the streams keep their entries; a failed read is still reported as a
 * gap once reading works again (the server may have restarted without its data).
 * @example const follower = await followStreams({ connection, streams, batchSize: 500, blockMs: 1000, retryDelayMs: 1000, log }, { onEvents, onGap });
 */
export async function followStreams(o: StreamFollowerOptions, listener: FollowOptions): Promise<Subscription> {
  const { connection } = o;
  // The ids to read after are taken now: '$' on every read would lose what arrives between two reads.
  const after = await Promise.all(
    o.streams.map(async (stream) => {
      const [last] = await connection.xRevRange(stream, '+', '-', { COUNT: 1 });
      return last ? String(last.id) : '0-0';
    }),
  );
  let running = true;

  async function run(): Promise<void> {
    let failed = false;
    while (running) {
      try {
        const entries = await readStreams(connection, o.streams, after, { count: o.batchSize, blockMs: o.blockMs });
        if (failed) {
          failed = false;
          listener.onGap();
        }
        const events: OutboxEvent[] = [];
        for (const entry of entries) {
          after[o.streams.indexOf(entry.stream)] = entry.id;
          try {
            if (entry.fields) events.push(eventFromFields(o.codec, entry.fields));
          } catch (error) {
            // The groups' partition workers move it to their dead letters; a follower has none, and goes on.
            o.log(`redis streams follower: entry ${entry.id} of ${entry.stream} cannot be decoded; skipped`, error);
          }
        }
        if (events.length > 0) listener.onEvents(events);
      } catch (error) {
        if (!running) break;
        failed = true;
        o.log('redis streams follower: reading failed; will report a gap once it reads again', error);
        await new Promise((r) => setTimeout(r, o.retryDelayMs));
      }
    }
  }

  const loop = run();
  return {
    async stop() {
      running = false;
      // Nothing in hand to finish: closing the connection ends the blocking read.
      destroyClient(connection);
      await loop;
    },
  };
}
