import type { Channel, ChannelModel } from 'amqplib';
import type { FollowOptions, OutboxEvent, Subscription } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { errorMessage } from './amqp-error.ts';
import type { AmqpConnection } from './connection.ts';
import { decodeEvent } from './message.ts';
import type { RabbitNames } from './names.ts';

export interface RabbitFollowerOptions {
  connection: AmqpConnection;
  names: RabbitNames;
  partitions: number;
  codec: EventCodec;
  log: (message: string, error?: unknown) => void;
}

/**
 * Follows the events exchange through a queue of its own: server-named, exclusive and auto-delete, bound to
 * every partition's routing key and consumed without acknowledgements. RabbitMQ deletes the queue with the
 * connection, so a follower that dies leaves nothing behind. Events published while no queue was bound are
 * not there for it: after a reconnection it binds a new queue and reports a gap. Replays of dead letters go
 * to one group's queue, never through the exchange, so followers do not see them.
 * @example const follower = await followExchange({ connection, names, partitions: 8, log }, { onEvents, onGap });
 */
export async function followExchange(o: RabbitFollowerOptions, listener: FollowOptions): Promise<Subscription> {
  let channel: Channel | undefined;
  let running = true;

  async function bind(model: ChannelModel): Promise<void> {
    const ch = await model.createChannel();
    ch.on('error', (error: Error) => {
      if (running) o.log(`rabbitmq follower: ${errorMessage(error)}`, error);
    });
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    for (let p = 0; p < o.partitions; p++) await ch.bindQueue(queue, o.names.events, o.names.partitionKey(p));
    await ch.consume(
      queue,
      (message) => {
        if (!message) return; // cancelled by the server (the queue went away); the reconnection binds a new one
        let event: OutboxEvent;
        try {
          event = decodeEvent(message, o.codec);
        } catch (error) {
          o.log(`rabbitmq follower: a message that is not an event (${errorMessage(error)}); skipped`, error);
          return;
        }
        listener.onEvents([event]);
      },
      { noAck: true },
    );
    channel = ch;
  }

  const model = o.connection.current();
  if (!model) throw new Error('rabbitmq follower: not connected');
  await bind(model);
  const stopReconnecting = o.connection.onReconnect((next) => {
    if (!running) return;
    bind(next).then(
      () => listener.onGap(),
      (error: unknown) => o.log('rabbitmq follower: could not follow again after the reconnection', error),
    );
  });

  return {
    async stop() {
      running = false;
      stopReconnecting();
      await channel?.close().catch(() => {});
    },
  };
}
