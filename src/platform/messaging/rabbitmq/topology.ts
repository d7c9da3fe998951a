import type { Channel } from 'amqplib';
import type { RabbitNames } from './names.ts';

/**
 * Declares the namespace's exchanges (idempotent; every broker instance does it at start).
 * @example await declareNamespace(channel, rabbitNames('stratum'));
 */
export async function declareNamespace(channel: Channel, names: RabbitNames): Promise<void> {
  await channel.assertExchange(names.events, 'direct', { durable: true });
  await channel.assertExchange(names.deadLetterExchange, 'direct', { durable: true });
  await channel.assertExchange(names.control, 'direct', { durable: true });
}

/**
 * Declares a group's durable partition queues, each bound to its partition's routing key, and its dead-letter
 * queue. Classic queues: a delivery given back (nack, a closed channel) returns to its place at the head, which
 * keeps a partition in order. Queues are consumed exclusively (one member per partition), which RabbitMQ
 * refuses on `x-single-active-consumer` queues, so they do not carry that argument (decision 0014).
 * Changing a queue's arguments later makes RabbitMQ refuse the declaration (406): delete the queues first.
 * @example await declareGroup(channel, rabbitNames('stratum'), 'scores', 8);
 */
export async function declareGroup(
  channel: Channel,
  names: RabbitNames,
  group: string,
  partitions: number,
): Promise<void> {
  const dlq = names.deadLetterQueue(group);
  await channel.assertQueue(dlq, { durable: true });
  await channel.bindQueue(dlq, names.deadLetterExchange, group);
  for (let p = 0; p < partitions; p++) {
    const queue = names.partitionQueue(group, p);
    await channel.assertQueue(queue, {
      durable: true,
      arguments: { 'x-dead-letter-exchange': names.deadLetterExchange, 'x-dead-letter-routing-key': group },
    });
    await channel.bindQueue(queue, names.events, names.partitionKey(p));
  }
}

/**
 * Deletes the queues of the given groups and the namespace's exchanges, with everything in them (tests, a
 * namespace being retired). Missing ones are skipped.
 * @example await deleteNamespace(channel, rabbitNames('c1234'), ['billing'], 8);
 */
export async function deleteNamespace(
  channel: Channel,
  names: RabbitNames,
  groups: Iterable<string>,
  partitions: number,
): Promise<void> {
  for (const group of groups) {
    for (let p = 0; p < partitions; p++) await channel.deleteQueue(names.partitionQueue(group, p));
    await channel.deleteQueue(names.deadLetterQueue(group));
    await channel.deleteQueue(names.membersQueue(group));
  }
  for (const exchange of [names.events, names.deadLetterExchange, names.control])
    await channel.deleteExchange(exchange);
}
