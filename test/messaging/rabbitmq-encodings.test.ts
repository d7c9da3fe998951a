import { randomBytes, randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { partitionOf, type Broker, type OutboxEvent, type Subscription } from '../../src/platform/messaging/broker.ts';
import {
  CONTENT_TYPES,
  createEventCodec,
  EVENT_ENCODINGS,
  payloadMismatch,
  type EventEncoding,
} from '../../src/platform/messaging/codec/event-codec.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { createRabbitMqBroker, deleteNamespace, rabbitNames } from '../../src/platform/messaging/rabbitmq/index.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { eventually, eventuallyAsync } from './contract.ts';
import { DECLARED_EVENTS, sampleEvents } from './fixtures/event-samples.ts';

const url = process.env.RABBITMQ_URL;
const GROUP = 'enc';

if (!url) {
  console.log('[stratum tests] RABBITMQ_URL not set: skipping the RabbitMQ encoding tests');
  describe.skip('rabbitmq encodings (needs RABBITMQ_URL)', () => {
    it('round-trips every event type in every encoding', () => {});
  });
} else {
  const rabbitUrl = url;
  const namespaces: string[] = [];
  const opened: Broker[] = [];
  const subscriptions: Subscription[] = [];
  const codec = (encoding: EventEncoding) => createEventCodec({ encoding, events: DECLARED_EVENTS });

  async function open(namespace: string, encoding: EventEncoding): Promise<Broker> {
    if (!namespaces.includes(namespace)) namespaces.push(namespace);
    const broker = await createRabbitMqBroker({
      url: rabbitUrl,
      namespace,
      groups: [GROUP],
      codec: codec(encoding),
      redeliverDelayMs: 50,
    });
    opened.push(broker);
    return broker;
  }

  /** A group member that records what it is handed, in order. */
  async function collect(broker: Broker): Promise<OutboxEvent[]> {
    const received: OutboxEvent[] = [];
    subscriptions.push(
      await broker.subscribe(GROUP, {
        handle: async ({ event }) => {
          received.push(event);
          return { kind: 'ack' };
        },
      }),
    );
    return received;
  }

  const newNamespace = () => `stratum-enc-${randomBytes(4).toString('hex')}`;

  afterEach(async () => {
    for (const s of subscriptions.splice(0)) await s.stop();
    for (const b of opened.splice(0)) await b.close();
  });

  afterAll(async () => {
    const connection = await amqp.connect(rabbitUrl);
    try {
      const ch = await connection.createChannel();
      for (const ns of namespaces) await deleteNamespace(ch, rabbitNames(ns), new Set([GROUP]), 8);
    } finally {
      await connection.close();
    }
  });

  describe('rabbitmq: event encodings', () => {
    it.each(EVENT_ENCODINGS)('delivers every declared event type in %s, as published, in order', async (encoding) => {
      const broker = await open(newNamespace(), encoding);
      const received = await collect(broker);
      const events = sampleEvents('customer-1');
      await broker.publish(events);
      await eventually(() => received.length >= events.length, `${events.length} events`);
      expect(received).toEqual(events);
    });

    it('reads a mixed stream (three writers, three encodings, one key) in publish order', async () => {
      const namespace = newNamespace();
      const writers = await Promise.all(EVENT_ENCODINGS.map((e) => open(namespace, e)));
      const received = await collect(await open(namespace, 'json'));
      const events = sampleEvents('mixed');
      for (const [i, e] of events.entries()) await writers[i % writers.length]!.publish([e]);
      await eventually(() => received.length >= events.length, `${events.length} events`);
      expect(received).toEqual(events);
    });

    it('dead-letters an unknown content type and a corrupt body with the reason, and goes on', async () => {
      const namespace = newNamespace();
      const broker = await open(namespace, 'protobuf');
      const received = await collect(broker);
      const names = rabbitNames(namespace);
      const key = 'poisoned';
      const routingKey = names.partitionKey(partitionOf(key, 8));
      const connection = await amqp.connect(rabbitUrl);
      try {
        const ch = await connection.createConfirmChannel();
        const send = (content: Buffer, contentType: string, messageId: string) =>
          new Promise<void>((resolve, reject) =>
            ch.publish(names.events, routingKey, content, { contentType, messageId, persistent: true }, (error) =>
              error ? reject(error) : resolve(),
            ),
          );
        await send(Buffer.from('<event/>'), 'text/xml', 'raw-xml');
        await send(Buffer.from([0x0a, 0xff, 0xff, 0xff]), CONTENT_TYPES.protobuf, 'raw-corrupt');
      } finally {
        await connection.close();
      }
      const after = sampleEvents(key)[0]!;
      await broker.publish([after]);
      await eventually(() => received.length >= 1, 'the event after the poison');
      expect(received).toEqual([after]);
      const letters = await eventuallyAsync(
        () => broker.deadLetters.list(GROUP, 10),
        (list) => list.length >= 2,
        'two dead letters',
      );
      expect(letters.map((l) => [l.event.id, l.event.type, l.attempts])).toEqual([
        ['raw-xml', 'undecodable', 0],
        ['raw-corrupt', 'undecodable', 0],
      ]);
      expect(letters[0]!.error).toMatch(/^unknown content type "text\/xml"/);
      expect(letters[1]!.error).toMatch(/^corrupt protobuf body \(4 bytes\)/);
      expect(letters[0]!.event.payload).toEqual({
        contentType: 'text/xml',
        base64: Buffer.from('<event/>').toString('base64'),
      });
    });
  });

  describe('rabbitmq: payloads off their schema', () => {
    let db: TestDatabase;
    afterAll(async () => {
      await db?.drop();
    });

    it('the consumer runner dead-letters them at once with the field named; the next event is applied', async () => {
      db = await createTestDatabase();
      const broker = await open(newNamespace(), 'msgpack');
      const applied: string[] = [];
      const schemas = new Map(DECLARED_EVENTS.map((e) => [e.name, e] as const));
      subscriptions.push(
        await consume({
          broker,
          transaction: createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random }),
          group: GROUP,
          reject: (event) => payloadMismatch(schemas, event),
          handler: async (event) => {
            applied.push(event.id);
          },
        }),
      );
      const bad: OutboxEvent = {
        id: randomUUID(),
        type: 'user.created',
        key: 'users',
        payload: { id: 'seven', username: 'x' },
        headers: {},
        createdAt: new Date().toISOString(),
      };
      const good = { ...bad, id: randomUUID(), payload: { id: 7, username: 'x' } };
      await broker.publish([bad, good]);
      await eventually(() => applied.length >= 1, 'the good event');
      expect(applied).toEqual([good.id]);
      const [letter] = await eventuallyAsync(
        () => broker.deadLetters.list(GROUP, 10),
        (list) => list.length >= 1,
        'the dead letter',
      );
      expect(letter).toMatchObject({ error: 'event user.created: payload /id must be integer', attempts: 0 });
      expect(letter!.event).toEqual(bad);
    });
  });
}
