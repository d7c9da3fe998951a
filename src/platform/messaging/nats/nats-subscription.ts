import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { OutboxEvent, SubscribeOptions } from '../broker.ts';
import { REPLAY_GROUP_HEADER } from './nats-layout.ts';
import type { NatsDeadLetters } from './nats-dead-letters.ts';

export interface GroupSubscriptionDeps {
  group: string;
  /** The group's durable consumer of each partition, index = partition. */
  consumers: readonly Consumer[];
  deadLetters: NatsDeadLetters;
  /** The consumers' ack wait: a handler still running tells the server so at a third of it. */
  ackWaitMs: number;
  /** Delay before an event whose handling threw (not a runner outcome: an adapter or runner bug) comes again. */
  retryDelayMs: number;
  isConnectionClosed: () => boolean;
  log: (message: string, error?: unknown) => void;
}

export interface GroupSubscription {
  /** Stops pulling, lets the events in hand finish and be acknowledged, then resolves. */
  stop(): Promise<void>;
  /** Stops pulling and heartbeats without acknowledging anything: the server delivers those events again after the ack wait. */
  abandon(): void;
}

/**
 * Pulls every partition of a group, one event at a time per partition. Other instances pulling the same durable
 * consumers compete with this one; `max_ack_pending: 1` on the consumer keeps each partition in order across them.
 * While a handler runs, `working()` keeps the event from being delivered elsewhere; a crashed process stops
 * sending it, and the event comes again after the ack wait.
 * @example const sub = subscribeGroup({ group: 'billing', consumers, deadLetters, ackWaitMs: 30_000, retryDelayMs: 1000, isConnectionClosed, log }, { handle });
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
          if (ending) { if (ending === 'stop') release(msg); continue; }
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
    let event: OutboxEvent;
    try {
      event = msg.json<OutboxEvent>();
    } catch (error) {
      // Only this adapter publishes here; a body it cannot read would otherwise block the partition for good.
      log(`nats: ${group} partition ${partition}: message ${msg.seq} is not an event; terminating it`, error);
      quietly(() => msg.term('not an event'));
      return;
    }
    const heartbeat = setInterval(() => quietly(() => msg.working()), heartbeatMs);
    heartbeats.add(heartbeat);
    try {
      const outcome = await slots.run(() => options.handle({ event, partition }));
      if (ending === 'abandon') return;
      if (outcome.kind === 'dead-letter') await deps.deadLetters.add(group, event, outcome, msg.seq);
      await acknowledge(msg, `event ${event.id}`);
    } catch (error) {
      if (ending === 'abandon') return;
      log(`nats: ${group} partition ${partition}: handling event ${event.id} failed; delivering it again in ${deps.retryDelayMs} ms`, error);
      quietly(() => msg.nak(deps.retryDelayMs));
    } finally {
      clearInterval(heartbeat);
      heartbeats.delete(heartbeat);
    }
  }

  async function acknowledge(msg: JsMsg, what: string): Promise<void> {
    // Waiting for the server's confirmation is what lets the partition's next event start after this one ends.
    try {
      await msg.ackAck();
    } catch (error) {
      log(`nats: ${group}: the ack of ${what} was not confirmed; it may come again`, error);
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
