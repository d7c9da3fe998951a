import type { ChannelModel } from 'amqplib';
import { errorMessage } from './amqp-error.ts';
import type { RabbitNames } from './names.ts';
import { declareGroup } from './topology.ts';

/** This member's place in a group, on one connection: how many members there are, and nudges between them. */
export interface Membership {
  readonly model: ChannelModel;
  alive(): boolean;
  /** Live members of the group, this one included. */
  members(): Promise<number>;
  /** True when nobody consumes the queue (a partition no member holds). */
  isFree(queue: string): Promise<boolean>;
  /** Asks the other members to rebalance now (a member joined or let partitions go). */
  nudge(): void;
  leave(): Promise<void>;
}

export interface JoinGroupOptions {
  model: ChannelModel;
  names: RabbitNames;
  group: string;
  partitions: number;
  /** Tells nudges of this member from those of others. */
  memberId: string;
  onNudge: () => void;
  log: (message: string, error?: unknown) => void;
}

/** Unused members queues (the whole group gone) disappear after this. */
const MEMBERS_QUEUE_EXPIRES_MS = 3_600_000;

/**
 * Declares the group's queues, then joins: a consumer on the group's members queue (nobody publishes there; its
 * consumer count is the number of live members, and RabbitMQ drops a dead member's consumer with its
 * connection) and an exclusive queue bound to the control exchange for nudges.
 * @example const membership = await joinGroup({ model, names, group: 'scores', partitions: 8, memberId, onNudge: rebalance, log });
 */
export async function joinGroup(o: JoinGroupOptions): Promise<Membership> {
  const ch = await o.model.createChannel();
  let open = true;
  ch.on('error', (error: Error) => o.log(`rabbitmq group ${o.group}: ${errorMessage(error)}`, error));
  ch.on('close', () => {
    open = false;
  });
  const membersQueue = o.names.membersQueue(o.group);
  try {
    await declareGroup(ch, o.names, o.group, o.partitions);
    await ch.assertQueue(membersQueue, { durable: false, arguments: { 'x-expires': MEMBERS_QUEUE_EXPIRES_MS } });
    await ch.consume(membersQueue, () => {}, { noAck: true });
    const { queue: nudges } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    await ch.bindQueue(nudges, o.names.control, o.group);
    await ch.consume(
      nudges,
      (message) => {
        if (message && message.content.toString('utf8') !== o.memberId) o.onNudge();
      },
      { noAck: true },
    );
  } catch (error) {
    if (open) await ch.close().catch(() => {});
    throw error;
  }
  return {
    model: o.model,
    alive: () => open,
    members: async () => (await ch.checkQueue(membersQueue)).consumerCount,
    isFree: async (queue) => (await ch.checkQueue(queue)).consumerCount === 0,
    nudge() {
      try {
        ch.publish(o.names.control, o.group, Buffer.from(o.memberId));
      } catch (error) {
        o.log(`rabbitmq group ${o.group}: could not nudge the other members`, error);
      }
    },
    async leave() {
      if (open) await ch.close().catch(() => {});
    },
  };
}
