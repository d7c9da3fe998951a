import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { AppError } from '../../errors/app-error.ts';
import { partitionOf, type OutboxEvent } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { errorMessage } from './amqp-error.ts';
import type { AmqpConnection } from './connection.ts';
import { encodeEvent } from './message.ts';
import type { RabbitNames } from './names.ts';

export interface Publisher {
  publish(events: readonly OutboxEvent[]): Promise<void>;
  close(): Promise<void>;
}

export interface PublisherOptions {
  connection: AmqpConnection;
  names: RabbitNames;
  partitions: number;
  codec: EventCodec;
  /** How long a publish waits for RabbitMQ's confirms before it fails (and its channel is dropped). */
  confirmTimeoutMs?: number;
  log: (message: string, error?: unknown) => void;
}

/**
 * Publishes on one confirm channel, in order, each event to its partition's routing key; a call resolves once
 * RabbitMQ has confirmed every message of it (persistent messages on durable queues: written to disk) and
 * rejects on a nack, a closed channel, while the connection is down, or when the confirms do not come within
 * confirmTimeoutMs (a broker that stalls, e.g. blocking publishers on an alarm): the relay keeps the rows and
 * retries, on a new channel.
 * Messages are `mandatory`: one that no queue takes (no group declared yet) comes back and is logged.
 * @example const publisher = createPublisher({ connection, names, partitions: 8, log }); await publisher.publish(events);
 */
export function createPublisher(options: PublisherOptions): Publisher {
  const { connection, names, partitions, log } = options;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 30_000;
  let channel: { model: ChannelModel; ready: Promise<ConfirmChannel> } | undefined;

  function confirmChannel(model: ChannelModel): Promise<ConfirmChannel> {
    if (channel?.model === model) return channel.ready;
    const ready = model.createConfirmChannel().then((ch) => {
      ch.on('error', (error: Error) => log(`rabbitmq publisher: ${errorMessage(error)}`, error));
      ch.on('close', () => {
        if (channel?.model === model) channel = undefined;
      });
      ch.on('return', (message) =>
        log(
          `rabbitmq publisher: event ${String(message.properties.messageId)} reached no queue (no group declared for ${message.fields.routingKey})`,
        ),
      );
      return ch;
    });
    ready.catch(() => {
      if (channel?.ready === ready) channel = undefined;
    });
    channel = { model, ready };
    return ready;
  }

  return {
    async publish(events) {
      if (events.length === 0) return;
      const model = connection.current();
      if (!model) throw new AppError('SERVICE.UNAVAILABLE', 'rabbitmq is not connected; publish again later');
      const ch = await confirmChannel(model);
      try {
        // publish() only buffers (its boolean is amqplib's write-buffer hint); a relay batch fits in memory.
        for (const event of events) {
          const { content, options: publishOptions } = encodeEvent(event, options.codec);
          ch.publish(names.events, names.partitionKey(partitionOf(event.key, partitions)), content, {
            ...publishOptions,
            mandatory: true,
          });
        }
        let timer: NodeJS.Timeout | undefined;
        const confirmed = ch.waitForConfirms();
        confirmed.catch(() => {}); // after a timeout it rejects with the closed channel: nobody waits for it then
        try {
          await Promise.race([
            confirmed,
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`no confirms within ${confirmTimeoutMs} ms`)),
                confirmTimeoutMs,
              );
            }),
          ]);
        } catch (error) {
          // Confirms that come late must not count for a later batch: this channel is done.
          if (channel?.model === model) channel = undefined;
          await ch.close().catch(() => {});
          throw error;
        } finally {
          clearTimeout(timer);
        }
      } catch (error) {
        throw new AppError('SERVICE.UNAVAILABLE', `rabbitmq did not confirm the events: ${errorMessage(error)}`, {
          cause: error,
        });
      }
    },
    async close() {
      const ready = channel?.ready;
      channel = undefined;
      if (ready) await ready.then((ch) => ch.close()).catch(() => {});
    },
  };
}
