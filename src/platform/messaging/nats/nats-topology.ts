import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsLayout } from './nats-layout.ts';

export interface StreamSettings {
  /** How long events stay in the events stream (a group further behind than this loses them). */
  maxAgeMs: number;
  /** The window in which JetStream drops a second publish of the same event id. */
  duplicateWindowMs: number;
}

/**
 * Creates the events and dead-letter streams if they are missing. Several instances may start at once: adding a
 * stream that exists with the same configuration is a no-op, and one that exists with another is used as it is.
 * @example await ensureStreams(jsm, natsLayout('stratum'), { maxAgeMs: 7 * 86_400_000, duplicateWindowMs: 120_000 });
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  layout: NatsLayout,
  settings: StreamSettings,
): Promise<void> {
  await ensureStream(jsm, {
    name: layout.eventsStream,
    subjects: [layout.eventSubjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: nanos(settings.maxAgeMs),
    duplicate_window: nanos(settings.duplicateWindowMs),
  });
  // Dead letters stay until replayed or dropped; direct get lets the store walk one group's subject.
  await ensureStream(jsm, {
    name: layout.deadLetterStream,
    subjects: [layout.deadLetterSubjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: nanos(settings.duplicateWindowMs),
    allow_direct: true,
  });
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (error) {
    // Someone else's configuration (an older version, an operator's limits) wins over ours.
    await jsm.streams.info(config.name).catch(() => {
      throw error;
    });
  }
}

export interface ConsumerSettings {
  ackWaitMs: number;
}

/**
 * The durable pull consumer of one group on one partition. `max_ack_pending: 1` is what keeps a partition in
 * order within a group: the server hands out the next message only once the previous one is acknowledged, whichever
 * instance pulls. Redelivery is unlimited; the runner decides when an event goes to the dead letters.
 * @example const info = await ensureGroupConsumer(jsm, layout, 'billing', 3, { ackWaitMs: 30_000 });
 */
export async function ensureGroupConsumer(
  jsm: JetStreamManager,
  layout: NatsLayout,
  group: string,
  partition: number,
  settings: ConsumerSettings,
): Promise<ConsumerInfo> {
  const name = layout.consumerName(group, partition);
  const config: Partial<ConsumerConfig> = {
    durable_name: name,
    filter_subject: layout.eventSubject(partition),
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(settings.ackWaitMs),
    max_ack_pending: 1,
    max_deliver: -1,
  };
  try {
    return await jsm.consumers.add(layout.eventsStream, config);
  } catch (error) {
    // It exists with other settings (another ack wait): align the ones that may change.
    return await jsm.consumers
      .update(layout.eventsStream, name, { ack_wait: config.ack_wait, max_ack_pending: 1, max_deliver: -1 })
      .catch(() => {
        throw error;
      });
  }
}
