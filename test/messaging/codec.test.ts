import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declaredEvents } from '../../src/app/messaging.ts';
import { UserCreated } from '../../src/contexts/users/events.ts';
import { defineEvent, publish, Type } from '../../src/platform/context/events.ts';
import type { OutboxEvent } from '../../src/platform/messaging/broker.ts';
import {
  CONTENT_TYPES,
  createEventCodec,
  EVENT_ENCODINGS,
  EventDecodeError,
  payloadMismatch,
  undecodableEvent,
} from '../../src/platform/messaging/codec/event-codec.ts';
import { protoText } from '../../src/platform/messaging/codec/proto-schema.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { DECLARED_EVENTS, SAMPLE_PAYLOADS, sampleEvents } from './fixtures/event-samples.ts';

const codecs = Object.fromEntries(
  EVENT_ENCODINGS.map((encoding) => [encoding, createEventCodec({ encoding, events: DECLARED_EVENTS })]),
);
// Readers in another encoding read what any writer wrote: the content type decides.
const reader = createEventCodec({ encoding: 'json', events: DECLARED_EVENTS });

describe('the event codec', () => {
  it('has a sample of every declared event type', () => {
    expect(DECLARED_EVENTS.map((e) => e.name).sort()).toEqual(Object.keys(SAMPLE_PAYLOADS).sort());
    expect(declaredEvents().map((e) => e.name)).toEqual(DECLARED_EVENTS.map((e) => e.name));
  });

  it.each(EVENT_ENCODINGS)('round-trips every declared event type in %s, one at a time and as a batch', (encoding) => {
    const events = sampleEvents('k1');
    for (const event of events) {
      const { body, contentType } = codecs[encoding]!.encode(event);
      expect(contentType).toBe(CONTENT_TYPES[encoding]);
      expect(reader.decode(body, contentType)).toEqual(event);
      expect(reader.decodeMany(body, contentType)).toEqual([event]);
    }
    const batch = codecs[encoding]!.encodeMany(events);
    expect(reader.decodeMany(batch.body, batch.contentType)).toEqual(events);
    const one = codecs[encoding]!.encodeMany(events.slice(0, 1));
    expect(reader.decodeMany(one.body, one.contentType)).toEqual(events.slice(0, 1));
  });

  it('writes JSON exactly as before encodings existed (old readers and old messages keep working)', () => {
    const [event] = sampleEvents('k');
    expect(codecs.json!.encode(event!).body.toString()).toBe(JSON.stringify(event));
    expect(reader.decode(Buffer.from(JSON.stringify(event)), undefined)).toEqual(event);
    expect(reader.decode(Buffer.from(JSON.stringify(event)), 'application/json; charset=utf-8')).toEqual(event);
  });

  it('makes MessagePack and Protobuf bodies smaller than JSON for every sample', () => {
    for (const event of sampleEvents('customer-42')) {
      const [json, msgpack, protobuf] = EVENT_ENCODINGS.map((e) => codecs[e]!.encode(event).body.length);
      expect(msgpack!, event.type).toBeLessThan(json!);
      expect(protobuf!, event.type).toBeLessThan(msgpack!);
    }
  });

  it('carries an undeclared type, or a payload its message cannot hold, as JSON inside the Protobuf envelope', () => {
    const odd: OutboxEvent[] = [
      {
        id: randomUUID(),
        type: 'test.happened',
        key: 'k',
        payload: { n: [1, { deep: true }] },
        headers: {},
        createdAt: '',
      },
      { id: randomUUID(), type: 'user.created', key: 'k', payload: { id: 'not a number' }, headers: {}, createdAt: '' },
      { id: randomUUID(), type: 'test.nothing', key: 'k', payload: null, headers: {}, createdAt: '' },
    ];
    for (const event of odd) {
      const { body, contentType } = codecs.protobuf!.encode(event);
      expect(reader.decode(body, contentType)).toEqual(event);
    }
  });

  it('refuses an unknown content type, a corrupt body and a body that is no event, saying which', () => {
    const { body } = codecs.protobuf!.encode(sampleEvents('k')[0]!);
    expect(() => reader.decode(body, 'text/xml')).toThrow(
      new EventDecodeError(
        'unknown content type "text/xml": not one of application/json, application/msgpack, application/x-protobuf',
      ),
    );
    expect(() => reader.decode(Buffer.from([0xff, 0xff, 0xff]), CONTENT_TYPES.protobuf)).toThrow(
      /^corrupt protobuf body \(3 bytes\)/,
    );
    expect(() => reader.decode(Buffer.from('{"id":'), CONTENT_TYPES.json)).toThrow(/^corrupt json body/);
    expect(() => reader.decode(Buffer.from([0x85]), CONTENT_TYPES.msgpack)).toThrow(/^corrupt msgpack body/);
    expect(() => reader.decode(Buffer.from('{"id":1}'), CONTENT_TYPES.json)).toThrow(
      'the json body is not an event (an id, a type and a key)',
    );
    expect(() => reader.decodeMany(Buffer.from('[]'), CONTENT_TYPES.json)).toThrow('the json body holds no event');
    expect(() => reader.decode(Buffer.alloc(0), CONTENT_TYPES.protobuf)).toThrow(
      'the protobuf body is not an event (an id, a type and a key)',
    );
    // A reader that does not know a type's schema says so instead of reading its payload as null.
    const unaware = createEventCodec({ encoding: 'json' });
    expect(() => unaware.decode(body, CONTENT_TYPES.protobuf)).toThrow(
      'a protobuf payload of user.created, whose schema this reader does not know',
    );
    // A 64-bit integer of another MessagePack writer reads as a number.
    const packed = Buffer.concat([
      Buffer.from([0x84, 0xa2]),
      Buffer.from('id'),
      Buffer.from([0xa1]),
      Buffer.from('a'),
      Buffer.from([0xa4]),
      Buffer.from('type'),
      Buffer.from([0xa1]),
      Buffer.from('t'),
      Buffer.from([0xa3]),
      Buffer.from('key'),
      Buffer.from([0xa1]),
      Buffer.from('k'),
      Buffer.from([0xa7]),
      Buffer.from('payload'),
      Buffer.from([0x81, 0xa1, 0x6e, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
    ]);
    expect(reader.decode(packed, CONTENT_TYPES.msgpack).payload).toEqual({ n: 2 ** 32 });
    expect(undecodableEvent('m1', Buffer.from('abc'), 'text/xml')).toEqual({
      id: 'm1',
      type: 'undecodable',
      key: '',
      payload: { contentType: 'text/xml', base64: 'YWJj' },
      headers: {},
      createdAt: '',
    });
  });

  it('names the field of a payload off its schema', () => {
    const schemas = new Map(DECLARED_EVENTS.map((e) => [e.name, e]));
    expect(payloadMismatch(schemas, { type: 'user.created', payload: { id: 1, username: 'a' } })).toBeUndefined();
    expect(payloadMismatch(schemas, { type: 'user.created', payload: { id: 'x', username: 'a' } })).toBe(
      'event user.created: payload /id must be integer',
    );
    expect(
      payloadMismatch(schemas, { type: 'order.status_changed', payload: { id: 1, from: 'pending', to: 'lost' } }),
    ).toMatch(/^event order\.status_changed: payload \/to /);
    expect(payloadMismatch(schemas, { type: 'not.declared', payload: 5 })).toBeUndefined();
  });
});

describe('the Protobuf messages', () => {
  it('proto/events.proto is what `stratum proto` prints (regenerate: npm run -s stratum -- proto > proto/events.proto)', () => {
    expect(fs.readFileSync('proto/events.proto', 'utf8').trimEnd()).toBe(protoText(declaredEvents()).trimEnd());
  });

  it('numbers fields in declaration order, keeps presence for optional ones, and refuses what has no field type', () => {
    expect(protoText([UserCreated])).toContain(
      'message UserCreated {\n  sint64 id = 1;\n  string username = 2;\n  optional sint64 others = 3;\n}',
    );
    const nested = defineEvent(
      'test.nested',
      Type.Object({ tags: Type.Array(Type.String()), at: Type.Object({ x: Type.Number(), ok: Type.Boolean() }) }),
    );
    expect(protoText([nested])).toContain('repeated string tags = 1;');
    expect(protoText([nested])).toMatch(
      /message TestNested \{\n {2}message At \{\n {4}double x = 1;\n {4}bool ok = 2;\n {2}\}\n {2}repeated string tags = 1;\n {2}At at = 2;\n\}/,
    );
    const mixed = defineEvent('test.mixed', Type.Object({ v: Type.Union([Type.String(), Type.Integer()]) }));
    expect(() => protoText([mixed])).toThrow(
      'test.mixed.v: only unions of strings (literals) have a Protobuf field type',
    );
    const codec = createEventCodec({ encoding: 'protobuf', events: [nested] });
    const event = {
      id: 'n',
      type: 'test.nested',
      key: 'k',
      payload: { tags: ['a', 'b'], at: { x: 1.5, ok: false } },
      headers: {},
      createdAt: '',
    };
    const { body, contentType } = codec.encode(event);
    expect(codec.decode(body, contentType)).toEqual(event);
  });
});

describe('publish', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('refuses a payload off its schema, naming the field, and writes nothing', async () => {
    const before = (await db.sql<{ n: number }[]>`select count(*)::int as n from messaging.outbox`)[0]!.n;
    await expect(
      db.sql.begin((tx) => publish(tx, UserCreated, 'users', { id: 'seven', username: 'x' } as never)),
    ).rejects.toThrow('event user.created: payload /id must be integer');
    expect((await db.sql<{ n: number }[]>`select count(*)::int as n from messaging.outbox`)[0]!.n).toBe(before);
  });
});
