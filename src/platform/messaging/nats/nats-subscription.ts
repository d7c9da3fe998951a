import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Delivery, OutboxEvent, Outcome, SubscribeOptions } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { contentTypeOf, undecodableMessage, unpackEvents } from './nats-publish.ts';
import { REPLAY_GROUP_HEADER } from './nats-layout.ts';
import type { NatsDeadLetters } from './nats-dead-letters.ts';

export interface GroupSubscriptionDeps {
  group: string;
  /** Reads each message in the encoding its content type names, whatever this process writes. */
  codec: EventCodec;
  /** The events stream: with a message's sequence, what names an undecodable message in its dead letter. */
  stream: string;
  /** The group's durable consumer of each partition, index = partition. */
  consumers: readonly Consumer[];
  deadLetters: NatsDeadLetters;
  /** The consumers' ack wait: a handler still running tells the server so at a third of it. */
  ackWaitMs: number;
  /** Delay before an event whose handling threw (not a runner outcome: an adapter or runner bug) comes again. */
  retryDelayMs: number;
  isConnectionClosed: () => boolean;
  /** Resolves once the server has taken everything sent so far (a ping and its answer). */
  flush: () => Promise<void>;
  log: (message: string, error?: unknown) => void;
}

export interface GroupSubscription {
  /** Stops pulling, lets the events in hand finish and be acknowledged, then resolves. */
  stop(): Promise<void>;
  /** Stops pulling and heartbeats without acknowledging anything: the server delivers those events again after the ack wait. */
  abandon(): void;
}

/**
 * Pulls every partition of a group, one message (one event, or a partition's consecutive events published
 * together) at a time per partition. Other instances pulling the same durable
 * consumers compete with this one; `max_ack_pending: 1` on the consumer keeps each partition in order across them.
 * While a handler runs, `working()` keeps the event from being delivered elsewhere; a crashed process stops
 * sending it, and the event comes again after the ack wait.
 * @example const sub = subscribeGroup({ group: 'billing', codec: JSON_EVENTS, stream: 'STRATUM_EVENTS', consumers, deadLetters, ackWaitMs: 30_000, retryDelayMs: 1000, isConnectionClosed, flush, log }, { handle });
 */
export function subscribeGroup(deps: GroupSubscriptionDeps, options: SubscribeOptions): GroupSubscription {
  const { group, log } = deps;
  const heartbeatMs = Math.max(500, Math.floor(deps.ackWaitMs / 3));
  const pulls = new Set<ConsumerMessages>();
  const heartbeats = new Set<ReturnType<typeof setInterval>>();
  const slots = createSlots(options.maxPartitions ?? deps.consumers.length);
  let ending: 'stop' | 'abandon' | undefined;

  async function servePartition(consumer: Consumer, partition: number): Promise<void> {
    while (!ending && !deps.isConnectionClosed()) {
      try {
        const messages = await consumer.consume({ max_messages: 1 });
        pulls.add(messages);
        if (ending) messages.stop();
        for await (const msg of messages) {
          // Delivered after stop() was called: hand it straight back rather than let it wait out the ack wait.
          if (ending) {
            if (ending === 'stop') release(msg);
            continue;
          }
          await handleMessage(msg, partition);
        }
        pulls.delete(messages);
      } catch (error) {
        if (ending || deps.isConnectionClosed()) return;
        log(`nats: pulling ${group} partition ${partition} failed; pulling again`, error);
        await new Promise((r) => setTimeout(r, deps.retryDelayMs));
      }
    }
  }

  async function handleMessage(msg: JsMsg, partition: number): Promise<void> {
    const target = msg.headers?.get(REPLAY_GROUP_HEADER);
    if (target && target !== group) {
      await acknowledge(msg, 'a replay for another group');
      return;
    }
    const contentType = contentTypeOf(msg.headers);
    let events: OutboxEvent[];
    try {
      events = unpackEvents(msg.data, contentType, deps.codec);
    } catch (error) {
      await deadLetterUndecodable(msg, partition, contentType, error);
      return;
    }
    const what = events.length === 1 ? `event ${events[0]!.id}` : `the ${events.length} events from ${events[0]!.id}`;
    const heartbeat = setInterval(() => quietly(() => msg.working()), heartbeatMs);
    heartbeats.add(heartbeat);
    try {
      const outcomes = await slots.run(() => handleInOrder(events.map((event) => ({ event, partition }))));
      if (ending === 'abandon') return;
      for (const [i, outcome] of outcomes.entries()) {
        // The message's sequence and the event's place in it: a second store of the same dead letter is dropped.
        if (outcome.kind === 'dead-letter')
          await deps.deadLetters.add(
            group,
            events[i]!,
            outcome,
            events.length === 1 ? String(msg.seq) : `${msg.seq}.${i}`,
          );
      }
      await acknowledge(msg, what);
    } catch (error) {
      if (ending === 'abandon') return;
      log(
        `nats: ${group} partition ${partition}: handling ${what} failed; delivering it again in ${deps.retryDelayMs} ms`,
        error,
      );
      quietly(() => msg.nak(deps.retryDelayMs));
    } finally {
      clearInterval(heartbeat);
      heartbeats.delete(heartbeat);
    }
  }

  /**
   * A message that is no readable event (an unknown content type, a corrupt body) would block the partition for
   * good: it goes to the group's dead letters with the reason, body and content type kept, and is acknowledged,
   * so the partition goes on. Should storing it fail, it comes again after the retry delay.
   */
  async function deadLetterUndecodable(
    msg: JsMsg,
    partition: number,
    contentType: string | undefined,
    error: unknown,
  ): Promise<void> {
    const reason = error instanceof Error ? error.message : String(error);
    log(`nats: ${group} partition ${partition}: message ${msg.seq} is not an event (${reason}); to the dead letters`);
    try {
      const event = undecodableMessage(deps.stream, msg.seq, msg.data, contentType);
      await deps.deadLetters.add(group, event, { error: reason, attempts: 0 }, String(msg.seq));
    } catch (failure) {
      if (ending === 'abandon') return;
      log(
        `nats: ${group} partition ${partition}: could not store the dead letter of message ${msg.seq}; delivering it again in ${deps.retryDelayMs} ms`,
        failure,
      );
      quietly(() => msg.nak(deps.retryDelayMs));
      return;
    }
    if (ending === 'abandon') return;
    await acknowledge(msg, `message ${msg.seq}`);
  }

  /** The events of one message: all to handleBatch when there are several and it is given, else one after another. */
  async function handleInOrder(deliveries: Delivery[]): Promise<Outcome[]> {
    if (deliveries.length > 1 && options.handleBatch) return options.handleBatch(deliveries);
    const outcomes: Outcome[] = [];
    for (const delivery of deliveries) outcomes.push(await options.handle(delivery));
    return outcomes;
  }

  async function acknowledge(msg: JsMsg, what: string): Promise<void> {
    // Not waited for: the server hands out the partition's next message only once it has taken this ack
    // (max_ack_pending 1), so order holds without it. An ack lost on the way means the message comes again after
    // the ack wait, and processed_messages absorbs it. stop() flushes before it resolves.
    try {
      msg.ack();
    } catch (error) {
      log(`nats: ${group}: the ack of ${what} could not be sent; it may come again`, error);
    }
  }

  function release(msg: JsMsg): void {
    quietly(() => msg.nak());
  }

  function stopPulling(): void {
    for (const messages of pulls) messages.stop();
    pulls.clear();
  }

  const serving = Promise.all(deps.consumers.map((c, partition) => servePartition(c, partition)));

  return {
    async stop() {
      if (ending === 'abandon') return; // its handlers may never end; nothing of theirs will be acknowledged
      ending = 'stop';
      stopPulling();
      await serving;
      // The acks of what was in hand have reached the server once it answered a ping sent after them.
      if (!deps.isConnectionClosed())
        await deps
          .flush()
          .catch((error: unknown) =>
            log(`nats: ${group}: could not confirm the last acks; their messages may come again`, error),
          );
    },
    abandon() {
      ending = 'abandon';
      stopPulling();
      for (const heartbeat of heartbeats) clearInterval(heartbeat);
      heartbeats.clear();
    },
  };
}

/** Runs at most `n` tasks at once (the subscription's `maxPartitions`). */
function createSlots(n: number): { run<T>(task: () => Promise<T>): Promise<T> } {
  let free = Math.max(1, n);
  const waiting: Array<() => void> = [];
  return {
    async run(task) {
      if (free === 0) await new Promise<void>((r) => waiting.push(r));
      else free--;
      try {
        return await task();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else free++;
      }
    },
  };
}

function quietly(action: () => void): void {
  try {
    action();
  } catch {
    // The connection is closing or closed: the server delivers the event again after the ack wait.
  }
}
