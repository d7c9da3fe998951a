import type { ConfirmChannel, GetMessage } from 'amqplib';
import { AppError } from '../../errors/app-error.ts';
import { partitionOf, type DeadLetter, type DeadLetterStore } from '../broker.ts';
import type { EventCodec } from '../codec/event-codec.ts';
import { isNotFound } from './amqp-error.ts';
import type { AmqpConnection } from './connection.ts';
import { decodeDeadLetter, encodeEvent, type StoredDeadLetter } from './message.ts';
import type { RabbitNames } from './names.ts';

export interface RabbitDeadLetterOptions {
  connection: AmqpConnection;
  names: RabbitNames;
  partitions: number;
  /** Reads the events of dead letters RabbitMQ dead-lettered itself, in whatever encoding they came. */
  codec?: EventCodec;
}

/**
 * Dead letters live in each group's durable queue `<namespace>.<group>.dlq`; RabbitMQ has no lookup by id, so
 * every operation reads the queue from its head with unacknowledged gets on a channel of its own: `list` takes
 * up to `limit`, the others read until they find the id (O(position) round trips; fine for the hundreds a dead
 * letter queue should hold, slow for millions). Closing the channel gives back every message read and not
 * acknowledged, in place. Meanwhile those messages are invisible to another reader: two operations at once
 * may each see part of the queue. A group that never subscribed has no queue and no dead letters.
 * @example const letters = await createDeadLetterStore({ connection, names, partitions: 8 }).list('scores', 20);
 */
export function createDeadLetterStore(o: RabbitDeadLetterOptions): DeadLetterStore {
  async function withChannel<T>(absent: T, use: (ch: ConfirmChannel) => Promise<T>): Promise<T> {
    const model = o.connection.current();
    if (!model) throw new AppError('SERVICE.UNAVAILABLE', 'rabbitmq is not connected');
    const ch = await model.createConfirmChannel();
    ch.on('error', () => {}); // a 404 (no such queue) closes the channel; the caller gets it as a rejection
    try {
      return await use(ch);
    } catch (error) {
      if (isNotFound(error)) return absent;
      throw error;
    } finally {
      await ch.close().catch(() => {});
    }
  }

  /** Reads the group's dead letters from the head until `stop` says so or the queue (or `limit`) runs out. */
  async function scan(
    ch: ConfirmChannel,
    group: string,
    stop: (letter: StoredDeadLetter) => boolean,
    limit = Infinity,
  ): Promise<{ letter: StoredDeadLetter; message: GetMessage } | undefined> {
    for (let n = 0; n < limit; n++) {
      const message = await ch.get(o.names.deadLetterQueue(group), { noAck: false });
      if (!message) return undefined;
      const letter = decodeDeadLetter(group, message, o.codec);
      if (stop(letter)) return { letter, message };
    }
    return undefined;
  }

  const find = (ch: ConfirmChannel, group: string, id: string) => scan(ch, group, (letter) => letter.id === id);

  return {
    list: (group, limit) =>
      withChannel<DeadLetter[]>([], async (ch) => {
        const letters: DeadLetter[] = [];
        await scan(
          ch,
          group,
          (letter) => {
            letters.push(publicLetter(letter));
            return false;
          },
          limit,
        );
        return letters;
      }),
    get: (group, id) =>
      withChannel<DeadLetter | undefined>(undefined, async (ch) => {
        const found = await find(ch, group, id);
        return found && publicLetter(found.letter);
      }),
    replay: (group, id) =>
      withChannel(false, async (ch) => {
        const found = await find(ch, group, id);
        if (!found) return false;
        const { event, partition } = found.letter;
        const queue = o.names.partitionQueue(group, partition ?? partitionOf(event.key, o.partitions));
        const { content, options } = encodeEvent(event);
        let returned = false;
        ch.on('return', () => {
          returned = true;
        });
        // Straight to this group's partition queue (default exchange): the other groups had the event already.
        await new Promise<void>((resolve, reject) => {
          ch.sendToQueue(queue, content, { ...options, mandatory: true }, (error: unknown) =>
            error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
          );
        });
        if (returned) throw new Error(`rabbitmq: ${queue} does not exist; dead letter ${id} kept`);
        ch.ack(found.message);
        return true;
      }),
    drop: (group, id) =>
      withChannel(false, async (ch) => {
        const found = await find(ch, group, id);
        if (!found) return false;
        ch.ack(found.message);
        return true;
      }),
  };
}

function publicLetter({ partition: _partition, ...letter }: StoredDeadLetter): DeadLetter {
  return letter;
}
