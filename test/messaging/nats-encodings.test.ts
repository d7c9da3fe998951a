import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf, type Broker, type OutboxEvent, type Subscription } from '../../src/platform/messaging/broker.ts';
import {
  CONTENT_TYPES,
  createEventCodec,
  EVENT_ENCODINGS,
  type EventEncoding,
} from '../../src/platform/messaging/codec/event-codec.ts';
import { createNatsBroker } from '../../src/platform/messaging/nats/nats-broker.ts';
import { natsLayout } from '../../src/platform/messaging/nats/nats-layout.ts';
import { packEvents, unpackEvents } from '../../src/platform/messaging/nats/nats-publish.ts';
import { eventually, eventuallyAsync } from './contract.ts';
import { DECLARED_EVENTS, sampleEvents } from './fixtures/event-samples.ts';

const NATS_URL = process.env.NATS_URL;
if (!NATS_URL) console.log('[stratum tests] NATS_URL not set: skipping the NATS encoding tests on the server');

const codecs = Object.fromEntries(
  EVENT_ENCODINGS.map((encoding) => [encoding, createEventCodec({ encoding, events: DECLARED_EVENTS })]),
) as Record<EventEncoding, ReturnType<typeof createEventCodec>>;
const BATCH_CONTENT_TYPE = 'application/x-protobuf; proto=stratum.events.Batch';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('packing NATS messages in every encoding', () => {
  it.each(EVENT_ENCODINGS)('keeps each %s body within the byte limit, the events in order', (encoding) => {
    const events = Array.from({ length: 12 }, () => sampleEvents('k')).flat();
    const codec = codecs[encoding];
    const one = codec.encode(events[0]!).body.length;
    const limits = { events: 100, bytes: one * 10 };
    const messages = packEvents(events, limits, [], codec);
    expect(messages.length).toBeGreaterThan(1);
    for (const m of messages) {
      if (m.ids.length > 1) expect(m.body.length).toBeLessThanOrEqual(limits.bytes);
      expect(m.contentType).toBe(codec.encodeMany(events.slice(0, m.ids.length)).contentType);
    }
    // Greedy: a message ends only where the next event would not have fitted.
    for (const [i, m] of messages.slice(0, -1).entries()) {
      const start = messages.slice(0, i).reduce((n, x) => n + x.ids.length, 0);
      const longer = codec.encodeMany(events.slice(start, start + m.ids.length + 1));
      expect(longer.body.length).toBeGreaterThan(limits.bytes);
    }
    expect(messages.flatMap((m) => unpackEvents(m.body, m.contentType, codecs.json))).toEqual(events);
  });

  it('writes JSON messages byte for byte as before: one event as itself, several as an array', () => {
    const events = sampleEvents('k');
    const [single] = packEvents(events.slice(0, 1), { events: 100, bytes: 1_000_000 }, [], codecs.json);
    expect(single!.body.toString()).toBe(JSON.stringify(events[0]));
    expect(single!.contentType).toBe(CONTENT_TYPES.json);
    const [many] = packEvents(events, { events: 100, bytes: 1_000_000 }, [], codecs.json);
    expect(many!.body.toString()).toBe(`[${events.map((e) => JSON.stringify(e)).join(',')}]`);
  });

  it('gives the same events the same message ids in every encoding, so JetStream drops a re-send in another', () => {
    const events = sampleEvents('k');
    const limits = { events: 4, bytes: 1_000_000 };
    const ids = EVENT_ENCODINGS.map((e) => packEvents(events, limits, [], codecs[e]).map((m) => m.msgID));
    expect(ids[1]).toEqual(ids[0]);
    expect(ids[2]).toEqual(ids[0]);
  });
});

(NATS_URL ? describe : describe.skip)('nats broker: event encodings', () => {
  const url = NATS_URL!;
  const namespaces = new Set<string>();
  const opened: Broker[] = [];
  const subscriptions: Subscription[] = [];
  let nc: NatsConnection;

  const make = async (namespace: string, encoding: EventEncoding) => {
    namespaces.add(namespace);
    const broker = await createNatsBroker({
      servers: url,
      namespace,
      codec: codecs[encoding],
      ackWaitMs: 3000,
      retryDelayMs: 200,
    });
    opened.push(broker);
    return broker;
  };
  const subscribe = async (broker: Broker, ...args: Parameters<Broker['subscribe']>) => {
    const sub = await broker.subscribe(...args);
    subscriptions.push(sub);
    return sub;
  };
  const byKey = (events: readonly OutboxEvent[], key: string) => events.filter((e) => e.key === key);
  /** Every message of the namespace's events stream: its content type header and body. */
  const storedMessages = async (namespace: string) => {
    const jsm = await jetstreamManager(nc);
    const stream = natsLayout(namespace).eventsStream;
    const info = await jsm.streams.info(stream);
    const stored = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      if (m) stored.push({ contentType: m.header.get('content-type'), data: m.data });
    }
    return stored;
  };

  beforeAll(async () => {
    nc = await connect({ servers: url });
  });

  afterAll(async () => {
    await Promise.all(subscriptions.map((s) => s.stop()));
    await Promise.all(opened.map((b) => b.close()));
    const jsm = await jetstreamManager(nc);
    for (const namespace of namespaces) {
      const layout = natsLayout(namespace);
      // Deleting a stream deletes its consumers.
      for (const stream of [layout.eventsStream, layout.deadLetterStream])
        await jsm.streams.delete(stream).catch(() => false);
    }
    await nc.close();
  });

  it.each(EVENT_ENCODINGS)(
    'delivers every sample event published in %s equal to what was published, singly and in batches, in order',
    async (encoding) => {
      const ns = `e${randomUUID().slice(0, 8)}`;
      const broker = await make(ns, encoding);
      const received: OutboxEvent[] = [];
      const batchSizes: number[] = [];
      await subscribe(broker, 'g', {
        handle: async ({ event }) => {
          received.push(event);
          return { kind: 'ack' };
        },
        handleBatch: async (deliveries) => {
          batchSizes.push(deliveries.length);
          received.push(...deliveries.map((d) => d.event));
          return deliveries.map(() => ({ kind: 'ack' }));
        },
      });
      const singles = sampleEvents('single');
      const batched = sampleEvents('batched');
      for (const e of singles) await broker.publish([e]);
      await broker.publish(batched); // one key: one partition, one message, as the relay publishes
      const total = singles.length + batched.length;
      await eventually(() => received.length >= total, `the ${encoding} events`);
      expect(byKey(received, 'single')).toEqual(singles);
      expect(byKey(received, 'batched')).toEqual(batched);
      expect(received).toHaveLength(total);
      expect(batchSizes).toEqual([batched.length]);

      // On the wire: each message names its encoding; JSON is what the adapter wrote before encodings.
      const stored = await storedMessages(ns);
      expect(stored).toHaveLength(singles.length + 1);
      // encodeMany writes a Protobuf Batch even of one event.
      const wireType = encoding === 'protobuf' ? BATCH_CONTENT_TYPE : CONTENT_TYPES[encoding];
      expect(stored.map((m) => m.contentType)).toEqual(stored.map(() => wireType));
      if (encoding === 'json') {
        expect(stored.slice(0, -1).map((m) => Buffer.from(m.data).toString())).toEqual(
          singles.map((e) => JSON.stringify(e)),
        );
        expect(Buffer.from(stored.at(-1)!.data).toString()).toBe(JSON.stringify(batched));
      }
    },
  );

  it('delivers a stream written in all three encodings to one consumer and one follower, in publish order per key', async () => {
    const ns = `e${randomUUID().slice(0, 8)}`;
    const writers = [await make(ns, 'json'), await make(ns, 'msgpack'), await make(ns, 'protobuf')];
    const reader = await make(ns, 'msgpack');
    const received: OutboxEvent[] = [];
    const heard: OutboxEvent[] = [];
    const follower = await reader.follow({ onEvents: (events) => heard.push(...events), onGap: () => {} });
    subscriptions.push(follower);
    await subscribe(reader, 'g', {
      handle: async ({ event }) => {
        received.push(event);
        return { kind: 'ack' };
      },
    });
    const keys = ['account-1', 'account-2', 'account-3'];
    const published: OutboxEvent[] = [];
    for (let round = 0; round < 4; round++) {
      for (const [w, writer] of writers.entries()) {
        // Some calls with one event, some with several keys and several events of a key (batches).
        const events = keys.flatMap((key) => sampleEvents(key).slice(0, round % 2 === 0 ? 1 : 3 + w));
        await writer.publish(events);
        published.push(...events);
      }
    }
    await eventually(() => received.length >= published.length, 'every event of the mixed stream');
    await eventually(() => heard.length >= published.length, 'the follower to hear every event');
    expect(received).toHaveLength(published.length);
    for (const key of keys) {
      expect(byKey(received, key), key).toEqual(byKey(published, key));
      expect(byKey(heard, key), key).toEqual(byKey(published, key));
    }
    const types = new Set((await storedMessages(ns)).map((m) => m.contentType));
    expect(types).toEqual(new Set([CONTENT_TYPES.json, CONTENT_TYPES.msgpack, BATCH_CONTENT_TYPE]));
  });

  it('puts a message of an unknown content type and a corrupt one in the dead letters, and goes on', async () => {
    const ns = `e${randomUUID().slice(0, 8)}`;
    const broker = await make(ns, 'protobuf');
    const layout = natsLayout(ns);
    const key = 'customer-9';
    const partition = partitionOf(key, broker.partitions);
    const received: OutboxEvent[] = [];
    const heard: OutboxEvent[] = [];
    const follower = await broker.follow({ onEvents: (events) => heard.push(...events), onGap: () => {} });
    subscriptions.push(follower);
    await subscribe(broker, 'g', {
      handle: async ({ event }) => {
        received.push(event);
        return { kind: 'ack' };
      },
    });

    const js = jetstream(nc);
    const raw = async (body: Uint8Array, contentType: string) => {
      const h = headers();
      h.set('content-type', contentType);
      await js.publish(layout.eventSubject(partition), body, { headers: h });
    };
    const xml = Buffer.from('<event id="1"/>');
    const corrupt = Buffer.from([0x0a, 0xff]); // field 1, then a length that never ends
    await raw(xml, 'text/xml');
    await raw(corrupt, CONTENT_TYPES.protobuf);
    const [valid, batch] = [sampleEvents(key).slice(0, 1), sampleEvents(key).slice(1, 4)];
    await broker.publish(valid!);
    await broker.publish(batch!);
    const expected = [...valid!, ...batch!];

    await eventually(() => received.length >= expected.length, 'the valid events behind the unreadable ones');
    expect(received).toEqual(expected);
    await eventually(() => heard.length >= expected.length, 'the follower to hear the valid events');
    expect(heard).toEqual(expected); // the unreadable ones skipped

    const letters = await eventuallyAsync(
      () => broker.deadLetters.list('g', 10),
      (l) => l.length === 2,
      'the dead letters of both unreadable messages',
    );
    expect(letters[0]!.error).toMatch(/unknown content type "text\/xml"/);
    expect(letters[1]!.error).toMatch(/corrupt protobuf body/);
    const unreadable: Array<[Buffer, string]> = [
      [xml, 'text/xml'],
      [corrupt, CONTENT_TYPES.protobuf],
    ];
    for (const [i, [body, contentType]] of unreadable.entries()) {
      expect(letters[i]).toMatchObject({
        group: 'g',
        attempts: 0,
        event: { type: 'undecodable', key: '', payload: { contentType, base64: body.toString('base64') } },
      });
      expect(letters[i]!.event.id).toMatch(UUID);
    }
    expect(letters[0]!.event.id).not.toBe(letters[1]!.event.id);

    // Nothing stuck: the group's consumer of the partition has nothing pending or unacknowledged.
    const jsm = await jetstreamManager(nc);
    await eventuallyAsync(
      () => jsm.consumers.info(layout.eventsStream, layout.consumerName('g', partition)),
      (info) => info.num_pending === 0 && info.num_ack_pending === 0,
      'the partition to be consumed to its end',
    );

    // A replay is JSON without a content type, and is read back as the placeholder the letter kept.
    expect(await broker.deadLetters.replay('g', letters[0]!.id)).toBe(true);
    await eventually(() => received.length === expected.length + 1, 'the replayed placeholder');
    expect(received.at(-1)).toEqual(letters[0]!.event);
    expect(await broker.deadLetters.list('g', 10)).toEqual([letters[1]]);
  });

  it.each(EVENT_ENCODINGS)(
    'stores a dead letter of an event published in %s as JSON, and replays it readable',
    async (encoding) => {
      const ns = `e${randomUUID().slice(0, 8)}`;
      const broker = await make(ns, encoding);
      const deliveries: OutboxEvent[] = [];
      let refuse = true;
      await subscribe(broker, 'g', {
        handle: async ({ event }) => {
          deliveries.push(event);
          return refuse ? { kind: 'dead-letter', error: 'refused', attempts: 1 } : { kind: 'ack' };
        },
      });
      const [e] = sampleEvents('k').slice(-1);
      await broker.publish([e!]);
      const [letter] = await eventuallyAsync(
        () => broker.deadLetters.list('g', 10),
        (l) => l.length === 1,
        'the dead letter',
      );
      expect(letter!.event).toEqual(e);
      const jsm = await jetstreamManager(nc);
      const stored = await jsm.streams.getMessage(natsLayout(ns).deadLetterStream, { seq: Number(letter!.id) });
      expect(stored!.json<{ event: OutboxEvent }>().event).toEqual(e);
      refuse = false;
      expect(await broker.deadLetters.replay('g', letter!.id)).toBe(true);
      await eventually(() => deliveries.length === 2, 'the replayed event');
      expect(deliveries).toEqual([e, e]);
      const replayed = (await storedMessages(ns)).at(-1)!;
      expect(replayed.contentType).toBe('');
      expect(Buffer.from(replayed.data).toString()).toBe(JSON.stringify(e));
    },
  );
});
