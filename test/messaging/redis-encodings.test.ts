import { randomUUID } from 'node:crypto';
import { createClient, RESP_TYPES } from 'redis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  partitionOf,
  type Broker,
  type OutboxEvent,
  type Outcome,
  type Subscription,
} from '../../src/platform/messaging/broker.ts';
import {
  CONTENT_TYPES,
  createEventCodec,
  EVENT_ENCODINGS,
  type EventCodec,
  type EventEncoding,
} from '../../src/platform/messaging/codec/event-codec.ts';
import { redisStreamsKeys } from '../../src/platform/messaging/redis/keys.ts';
import { createRedisStreamsBroker } from '../../src/platform/messaging/redis/redis-streams-broker.ts';
import { eventually, eventuallyAsync } from './contract.ts';
import { DECLARED_EVENTS, sampleEvents } from './fixtures/event-samples.ts';

const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) console.log('[stratum tests] REDIS_URL not set: skipping the Redis Streams encoding tests');

const ACK: Outcome = { kind: 'ack' };
const PARTITIONS = 4;
const codecOf = (encoding: EventEncoding): EventCodec => createEventCodec({ encoding, events: DECLARED_EVENTS });

(REDIS_URL ? describe : describe.skip)('redis streams broker: event encodings', () => {
  const url = REDIS_URL!;
  const namespaces = new Set<string>();
  const opened: Broker[] = [];
  const subscriptions: Subscription[] = [];
  const logged: string[] = [];

  const newNamespace = () => {
    const namespace = `e${randomUUID().slice(0, 8)}`;
    namespaces.add(namespace);
    return namespace;
  };
  const open = async (namespace: string, codec?: EventCodec) => {
    const broker = await createRedisStreamsBroker({
      url,
      namespace,
      partitions: PARTITIONS,
      leaseMs: 1000,
      claimIdleMs: 500,
      log: (message) => logged.push(message),
      ...(codec ? { codec } : {}),
    });
    opened.push(broker);
    return broker;
  };
  /** A client that reads bulk strings as Buffers, to look at entries as stored. */
  const rawClient = async () => {
    const client = createClient({ url });
    await client.connect();
    return client;
  };
  const collect = async (broker: Broker, group: string, got: OutboxEvent[]) => {
    subscriptions.push(
      await broker.subscribe(group, {
        handle: async (d) => {
          got.push(d.event);
          return ACK;
        },
      }),
    );
  };

  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.stop().catch(() => {})));
    await Promise.all(opened.splice(0).map((b) => b.close().catch(() => {})));
    logged.length = 0;
  });

  afterAll(async () => {
    const client = await rawClient();
    try {
      for (const namespace of namespaces) {
        for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 500 })) {
          if (keys.length > 0) await client.del(keys);
        }
      }
    } finally {
      client.destroy();
    }
  });

  describe.each(EVENT_ENCODINGS)('%s', (encoding) => {
    it('delivers every sample event to a group and a follower as it was published, in order, stored as the codec wrote it', async () => {
      const ns = newNamespace();
      const codec = codecOf(encoding);
      const broker = await open(ns, codec);
      const events = sampleEvents(`key-${encoding}`);
      expect(events.length).toBeGreaterThan(5);
      const got: OutboxEvent[] = [];
      await collect(broker, 'g', got);
      const heard: OutboxEvent[] = [];
      subscriptions.push(await broker.follow({ onEvents: (es) => heard.push(...es), onGap: () => {} }));

      await broker.publish(events.slice(0, 3));
      await broker.publish(events.slice(3));
      await eventually(() => got.length >= events.length && heard.length >= events.length, 'every sample event');

      expect(got).toEqual(events);
      expect(heard).toEqual(events);

      // As stored: JSON keeps the adapter's old entry `{ event }`; the others `{ ct, body }` with the body's bytes as encoded.
      const client = await rawClient();
      try {
        const stream = redisStreamsKeys(ns).events(partitionOf(events[0]!.key, PARTITIONS));
        const entries = await client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).xRange(stream, '-', '+');
        expect(entries).toHaveLength(events.length);
        entries.forEach((entry, i) => {
          const fields = entry.message as Record<string, Buffer>;
          const { body, contentType } = codec.encode(events[i]!);
          if (encoding === 'json') {
            expect(Object.keys(fields)).toEqual(['event']);
            expect(JSON.parse(fields.event!.toString('utf8'))).toEqual(events[i]);
          } else {
            expect(Object.keys(fields).sort()).toEqual(['body', 'ct']);
            expect(fields.ct!.toString('utf8')).toBe(contentType);
            expect(Buffer.compare(fields.body!, body)).toBe(0);
          }
        });
      } finally {
        client.destroy();
      }
      expect(logged).toEqual([]);
    });
  });

  it('lets one consumer read a stream written by json, msgpack and protobuf instances, in publish order per key', async () => {
    const ns = newNamespace();
    const writers = await Promise.all(EVENT_ENCODINGS.map((encoding) => open(ns, codecOf(encoding))));
    const keys = ['k-a', 'k-b', 'k-c', 'k-d', 'k-e'];
    const perKey = keys.map((key) => sampleEvents(key));
    // Interleaved: event i of every key in turn, each publish by the next instance.
    const published: OutboxEvent[] = [];
    for (let i = 0, w = 0; i < perKey[0]!.length; i++) {
      for (const events of perKey) {
        const e = events[i]!;
        await writers[w++ % writers.length]!.publish([e]);
        published.push(e);
      }
    }
    // A consumer started after the writes (the group starts at 0) on an instance of its own, writing JSON.
    const consumer = await open(ns, codecOf('json'));
    const got: OutboxEvent[] = [];
    await collect(consumer, 'mixed', got);
    await eventually(() => got.length >= published.length, 'every event of the mixed stream');

    expect(got).toHaveLength(published.length);
    for (const key of keys) {
      expect(got.filter((e) => e.key === key)).toEqual(published.filter((e) => e.key === key));
    }

    // The stream does hold every kind of entry.
    const client = await rawClient();
    try {
      const contentTypes = new Set<string>();
      for (let p = 0; p < PARTITIONS; p++) {
        for (const entry of await client.xRange(redisStreamsKeys(ns).events(p), '-', '+')) {
          contentTypes.add(entry.message.event !== undefined ? CONTENT_TYPES.json : String(entry.message.ct));
        }
      }
      expect(contentTypes).toEqual(new Set(Object.values(CONTENT_TYPES)));
    } finally {
      client.destroy();
    }
  });

  it('moves entries it cannot decode to the dead letters with the reason, acknowledged, and goes on', async () => {
    const ns = newNamespace();
    const broker = await open(ns, codecOf('msgpack'));
    const key = 'poisoned';
    const stream = redisStreamsKeys(ns).events(partitionOf(key, PARTITIONS));
    const got: OutboxEvent[] = [];
    await collect(broker, 'g', got);
    const heard: OutboxEvent[] = [];
    subscriptions.push(await broker.follow({ onEvents: (es) => heard.push(...es), onGap: () => {} }));

    const before = sampleEvents(key)[0]!;
    await broker.publish([before]);
    await eventually(() => got.length === 1, 'the event before the bad entries');

    const client = await rawClient();
    try {
      const unknownBody = Buffer.from('hello, not an event');
      // A length-delimited field 1 whose length runs past the end: no protobuf reader takes it.
      const corruptBody = Buffer.from([0x0a, 0xff, 0x01, 0x02]);
      const unknownId = await client.xAdd(stream, '*', { ct: 'application/x-unknown', body: unknownBody });
      const corruptId = await client.xAdd(stream, '*', { ct: CONTENT_TYPES.protobuf, body: corruptBody });
      const fieldlessId = await client.xAdd(stream, '*', { something: 'else' });
      const after = sampleEvents(key)[1]!;
      await broker.publish([after]);

      await eventually(() => got.length >= 2 && heard.length >= 2, 'the event after the bad entries');
      expect(got).toEqual([before, after]);
      expect(heard).toEqual([before, after]);

      const letters = await broker.deadLetters.list('g', 10);
      expect(letters.map((l) => l.id)).toHaveLength(3);
      const [unknown, corrupt, fieldless] = letters;
      expect(unknown).toMatchObject({
        group: 'g',
        attempts: 0,
        event: {
          id: unknownId,
          type: 'undecodable',
          payload: { contentType: 'application/x-unknown', base64: unknownBody.toString('base64') },
        },
      });
      expect(unknown!.error).toContain('application/x-unknown');
      expect(corrupt).toMatchObject({
        attempts: 0,
        event: {
          id: corruptId,
          type: 'undecodable',
          payload: { contentType: CONTENT_TYPES.protobuf, base64: corruptBody.toString('base64') },
        },
      });
      expect(corrupt!.error).toMatch(/corrupt protobuf body/);
      expect(fieldless).toMatchObject({ attempts: 0, event: { id: fieldlessId, type: 'undecodable' } });
      expect(fieldless!.error).toMatch(/without an event or a body field/);

      // Nothing stuck: every entry of the partition is acknowledged.
      expect(Number((await client.xPending(stream, 'g')).pending)).toBe(0);

      // A replay reads the placeholder back: the group gets it (its runner acknowledges it unseen).
      expect(await broker.deadLetters.replay('g', unknown!.id)).toBe(true);
      await eventually(() => got.length >= 3, 'the replayed placeholder');
      expect(got[2]).toEqual(unknown!.event);
      expect(heard).toHaveLength(2); // followers do not hear replays
    } finally {
      client.destroy();
    }
    expect(logged.filter((m) => m.includes('cannot be decoded'))).toHaveLength(6); // 3 by the group, 3 by the follower
  });

  it('keeps the dead letter of a msgpack or protobuf event readable and replays it as it was published', async () => {
    const ns = newNamespace();
    const [msgpack, protobuf] = [await open(ns, codecOf('msgpack')), await open(ns, codecOf('protobuf'))];
    const [first, second] = sampleEvents('dead');
    const got: OutboxEvent[] = [];
    subscriptions.push(
      await msgpack.subscribe('picky', {
        handle: async (d) => {
          got.push(d.event);
          return got.filter((e) => e.id === d.event.id).length === 1
            ? { kind: 'dead-letter', error: 'refused', attempts: 5 }
            : ACK;
        },
      }),
    );
    await msgpack.publish([first!]);
    await protobuf.publish([second!]);
    const letters = await eventuallyAsync(
      () => msgpack.deadLetters.list('picky', 10),
      (ls) => ls.length === 2,
      'both dead letters',
    );
    expect(letters.map((l) => l.event)).toEqual([first, second]);
    expect(letters.map((l) => [l.error, l.attempts])).toEqual([
      ['refused', 5],
      ['refused', 5],
    ]);
    for (const letter of letters) expect(await protobuf.deadLetters.replay('picky', letter.id)).toBe(true);
    await eventually(() => got.length >= 4, 'both replays');
    expect(got).toEqual([first, second, first, second]);
    expect(await msgpack.deadLetters.list('picky', 10)).toEqual([]);
  });
});
