import { DeliverPolicy, type Consumer, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import type { FollowOptions, OutboxEvent, Subscription } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { REPLAY_GROUP_HEADER, type NatsLayout } from './nats-layout.ts';
import { contentTypeOf, unpackEvents } from './nats-publish.ts';

export interface NatsFollowerOptions {
  js: JetStreamClient;
  layout: NatsLayout;
  /** Reads each message in the encoding its content type names. */
  codec: EventCodec;
  retryDelayMs: number;
  isConnectionClosed: () => boolean;
  log: (message: string, error?: unknown) => void;
}

/**
 * Follows every partition subject of the events stream with an ordered consumer: ephemeral, starting at new
 * messages, no acknowledgements; the client recreates it from the last stream sequence it saw when it falls
 * behind or the connection comes back. Stopping deletes it; the consumer of a process that died is deleted by
 * the server once nobody pulled from it for its inactivity threshold (5 minutes). Replays of dead
 * letters (for one group) are skipped. Should the consumer have to be made anew after an error, the follower
 * starts from there and reports a gap. Messages are read in whichever encoding they say; one that is no readable
 * event is skipped with a log line.
 * @example const follower = await followStream({ js, layout, codec, retryDelayMs: 1000, isConnectionClosed, log }, { onEvents, onGap });
 */
export async function followStream(o: NatsFollowerOptions, listener: FollowOptions): Promise<Subscription> {
  let running = true;
  let messages: ConsumerMessages | undefined;
  let consumer: Consumer | undefined;
  const open = async () => {
    consumer = await o.js.consumers.get(o.layout.eventsStream, {
      filter_subjects: o.layout.eventSubjects,
      deliver_policy: DeliverPolicy.New,
    });
    return consumer.consume();
  };
  messages = await open();

  async function run(): Promise<void> {
    while (running && !o.isConnectionClosed()) {
      try {
        if (!messages) {
          messages = await open();
          listener.onGap(); // anew from the end: what came since the last one is not there
        }
        for await (const msg of messages) {
          if (msg.headers?.get(REPLAY_GROUP_HEADER)) continue; // for one group only; every follower had the original
          let events: OutboxEvent[];
          try {
            events = unpackEvents(msg.data, contentTypeOf(msg.headers), o.codec);
          } catch (error) {
            // Not for a follower to keep: each group's consumer puts it in that group's dead letters.
            const reason = error instanceof Error ? error.message : String(error);
            o.log(`nats follower: message ${msg.seq} is not an event (${reason}); skipped`, error);
            continue;
          }
          listener.onEvents(events);
        }
        messages = undefined;
      } catch (error) {
        messages = undefined;
        if (!running || o.isConnectionClosed()) return;
        o.log('nats follower: following the events stream failed; following it anew from its end', error);
        await new Promise((r) => setTimeout(r, o.retryDelayMs));
      }
    }
  }

  const loop = run();
  return {
    async stop() {
      running = false;
      messages?.stop();
      await loop;
      if (!o.isConnectionClosed()) await consumer?.delete().catch(() => false);
    },
  };
}
