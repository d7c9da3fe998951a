import type { ChannelModel, ConsumeMessage } from 'amqplib';
import type { OutboxEvent, Outcome, SubscribeOptions } from '../broker.ts';
import { errorMessage, isAccessRefused } from './amqp-error.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { decodeEvent, encodeDeadLetter, undecodableOf } from './message.ts';

/** One partition queue of a group, held by this member: the only consumer of the queue while it lasts. */
export interface PartitionConsumer {
  readonly partition: number;
  /** Resolves once the channel is closed and no handler of this consumer is running any more. */
  readonly settled: Promise<void>;
  /** Stops handing over events, lets the one in hand finish, cancels, acknowledges it, closes the channel. */
  release(): Promise<void>;
  /** Ignores what the handler in hand returns: the connection is going away and RabbitMQ redelivers the event. */
  abandon(): void;
}

export interface ClaimPartitionOptions {
  model: ChannelModel;
  partition: number;
  queue: string;
  deadLetterQueue: string;
  /** Deliveries RabbitMQ sends ahead; they are still handled one at a time, in order. */
  prefetch: number;
  /** Wait before giving back a delivery whose handler threw, so a failing handler does not spin. */
  redeliverDelayMs: number;
  handle: SubscribeOptions['handle'];
  /** When given, the deliveries waiting in hand go to it together (the runner applies them in one transaction). */
  handleBatch?: SubscribeOptions['handleBatch'];
  now: () => Date;
  /** Reads each delivery in the encoding its content type names. */
  codec: EventCodec;
  newId: () => string;
  log: (message: string, error?: unknown) => void;
  /** The consumer ended without release(): its channel or connection closed, or it gave a delivery back. */
  onLost: (consumer: PartitionConsumer) => void;
}

/**
 * Claims a partition queue with an exclusive consumer on a confirm channel of its own, and hands its events to
 * the handler one after another. Resolves with undefined when another member holds the queue (403).
 *
 * An event the handler dead-letters is published to the group's dead-letter queue (confirmed) and then
 * acknowledged, so the partition goes on. An unexpected throw gives the delivery back by closing the channel:
 * an implicit nack with requeue of every unacknowledged delivery, which returns them to the head of the queue in
 * order, also when prefetch > 1; the subscription then claims the partition again.
 * @example const consumer = await claimPartition({ model, partition: 3, queue: 'ns.g.p3', deadLetterQueue: 'ns.g.dlq', prefetch: 1, redeliverDelayMs: 1000, handle, now, newId, log, onLost });
 */
export async function claimPartition(o: ClaimPartitionOptions): Promise<PartitionConsumer | undefined> {
  const ch = await o.model.createConfirmChannel();
  let open = true;
  let mode: 'taking' | 'releasing' | 'lost' | 'abandoned' = 'taking';
  let consumerTag: string | undefined;
  let cancelled = false;
  const waiting: ConsumeMessage[] = [];
  let inHand: Promise<void> | undefined;
  let resolveSettled!: () => void;
  const settled = new Promise<void>((resolve) => (resolveSettled = resolve));

  const consumer: PartitionConsumer = {
    partition: o.partition,
    settled,
    async release() {
      if (mode !== 'taking') return;
      mode = 'releasing';
      await inHand; // it cancels the consumer before acknowledging
      await cancel();
      await close(); // deliveries sent ahead (prefetch > 1) go back in place
      await settled;
    },
    abandon() {
      mode = 'abandoned';
    },
  };

  ch.on('error', (error: Error) => {
    if (!isAccessRefused(error)) o.log(`rabbitmq ${o.queue}: ${errorMessage(error)}`, error);
  });
  ch.on('close', () => {
    open = false;
    waiting.length = 0; // RabbitMQ has them back
    if (mode === 'taking' && consumerTag !== undefined) {
      mode = 'lost';
      try {
        o.onLost(consumer);
      } catch (error) {
        o.log(`rabbitmq ${o.queue}: onLost threw`, error);
      }
    }
    void Promise.resolve(inHand).then(resolveSettled);
  });

  try {
    await ch.prefetch(o.prefetch);
    consumerTag = (await ch.consume(o.queue, receive, { exclusive: true })).consumerTag;
  } catch (error) {
    await close();
    if (isAccessRefused(error)) return undefined;
    throw error;
  }
  if (!open) return undefined; // closed between consume-ok and here: nothing was handed over
  return consumer;

  /** amqplib calls this from its socket reader: a throw here would take the connection down. */
  function receive(message: ConsumeMessage | null): void {
    if (message === null) {
      o.log(`rabbitmq ${o.queue}: RabbitMQ cancelled the consumer (queue deleted?)`);
      void close();
      return;
    }
    waiting.push(message);
    if (inHand) return;
    inHand = (async () => {
      try {
        while (open && mode === 'taking' && waiting.length > 0) {
          if (o.handleBatch && waiting.length > 1) await handleMany(waiting.splice(0));
          else await handleOne(waiting.shift()!);
        }
      } catch (error) {
        o.log(`rabbitmq ${o.queue}: ${errorMessage(error)}`, error);
      } finally {
        inHand = undefined;
      }
    })();
  }

  async function handleOne(message: ConsumeMessage): Promise<void> {
    let event: OutboxEvent;
    try {
      event = decodeEvent(message, o.codec);
    } catch (error) {
      await deadLetterUndecodable(message, error);
      return;
    }
    let outcome: Outcome;
    try {
      outcome = await o.handle({ event, partition: o.partition });
    } catch (error) {
      if (mode === 'abandoned' || !open) return;
      o.log(
        `rabbitmq ${o.queue}: the handler threw on event ${event.id}; giving it back in ${o.redeliverDelayMs} ms`,
        error,
      );
      await new Promise((resolve) => setTimeout(resolve, o.redeliverDelayMs));
      await close();
      return;
    }
    if (mode === 'abandoned' || !open) return; // RabbitMQ has the delivery back and sends it again
    if (outcome.kind === 'dead-letter') {
      try {
        await publishDeadLetter(event, outcome);
      } catch (error) {
        o.log(`rabbitmq ${o.queue}: could not store the dead letter of event ${event.id}; giving it back`, error);
        await close();
        return;
      }
    }
    // Releasing: cancel before acknowledging, so the next holder can only start once this event is done.
    if (mode === 'releasing') await cancel();
    settle(() => ch.ack(message));
  }

  /**
   * The deliveries in hand, in order: the events up to the first delivery that is no readable event go to
   * handleBatch together, their dead letters are stored, and one `ack` with `allUpTo` settles them all; that
   * delivery (dead-lettered with its reason) and those after it wait their turn.
   */
  async function handleMany(messages: ConsumeMessage[]): Promise<void> {
    const batch: Array<{ message: ConsumeMessage; event: OutboxEvent }> = [];
    for (const [i, message] of messages.entries()) {
      let event: OutboxEvent;
      try {
        event = decodeEvent(message, o.codec);
      } catch (error) {
        // Those before it go first, as a batch; it and those after it wait their turn, in order.
        waiting.unshift(...messages.slice(i));
        if (batch.length > 0) break;
        waiting.shift();
        await deadLetterUndecodable(message, error);
        return;
      }
      batch.push({ message, event });
    }
    if (batch.length === 0) return;
    if (batch.length === 1) {
      // A single event: the usual path (it acknowledges only this delivery).
      waiting.unshift(batch[0]!.message);
      return;
    }
    let outcomes: Outcome[];
    try {
      outcomes = await o.handleBatch!(batch.map(({ event }) => ({ event, partition: o.partition })));
    } catch (error) {
      if (mode === 'abandoned' || !open) return;
      o.log(
        `rabbitmq ${o.queue}: the batch handler threw on events from ${batch[0]!.event.id}; giving them back in ${o.redeliverDelayMs} ms`,
        error,
      );
      await new Promise((resolve) => setTimeout(resolve, o.redeliverDelayMs));
      await close();
      return;
    }
    if (mode === 'abandoned' || !open) return;
    for (const [i, { event }] of batch.entries()) {
      const outcome = outcomes[i]!;
      if (outcome.kind !== 'dead-letter') continue;
      try {
        await publishDeadLetter(event, outcome);
      } catch (error) {
        o.log(
          `rabbitmq ${o.queue}: could not store the dead letter of event ${event.id}; giving the batch back`,
          error,
        );
        await close();
        return;
      }
    }
    if (mode === 'releasing') await cancel();
    settle(() => ch.ack(batch.at(-1)!.message, true));
  }

  /**
   * A delivery that is no readable event (an unknown content type, a corrupt body) goes to the group's dead
   * letters with the reason and is acknowledged, so the partition goes on; if storing it fails, the channel closes
   * and RabbitMQ delivers it again.
   */
  async function deadLetterUndecodable(message: ConsumeMessage, error: unknown): Promise<void> {
    o.log(`rabbitmq ${o.queue}: ${errorMessage(error)}; to the dead letters`, error);
    try {
      await publishDeadLetter(undecodableOf(message), { kind: 'dead-letter', error: errorMessage(error), attempts: 0 });
    } catch (failure) {
      o.log(`rabbitmq ${o.queue}: could not store the dead letter of an undecodable message; giving it back`, failure);
      await close();
      return;
    }
    settle(() => ch.ack(message));
  }

  function publishDeadLetter(event: OutboxEvent, outcome: Extract<Outcome, { kind: 'dead-letter' }>): Promise<void> {
    const { content, options } = encodeDeadLetter(event, {
      id: o.newId(),
      partition: o.partition,
      deadAt: o.now(),
      outcome,
    });
    return new Promise<void>((resolve, reject) => {
      ch.sendToQueue(o.deadLetterQueue, content, options, (error: unknown) =>
        error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
      );
    });
  }

  /** An ack or reject on a channel that just closed throws; RabbitMQ redelivers that event anyway. */
  function settle(send: () => void): void {
    try {
      send();
    } catch (error) {
      o.log(`rabbitmq ${o.queue}: ${errorMessage(error)} (the event will be delivered again)`, error);
    }
  }

  async function cancel(): Promise<void> {
    if (cancelled || !open || consumerTag === undefined) return;
    cancelled = true;
    await ch.cancel(consumerTag).catch((error: unknown) => o.log(`rabbitmq ${o.queue}: cancel failed`, error));
  }

  async function close(): Promise<void> {
    if (open) await ch.close().catch(() => {});
  }
}
