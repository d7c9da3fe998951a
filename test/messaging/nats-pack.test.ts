import { describe, expect, it } from 'vitest';
import { createPacker, packEvents, unpackEvents } from '../../src/platform/messaging/nats/nats-publish.ts';
import { event } from './contract.ts';

const unpack = (m: { body: Buffer; contentType: string }) => unpackEvents(m.body, m.contentType);

describe('the events of a NATS message', () => {
  it('packs one event as itself, with its id as the message id', () => {
    const e = event('k', 1);
    const [message, ...rest] = packEvents([e], { events: 100, bytes: 1024 });
    expect(rest).toEqual([]);
    expect(message).toEqual({
      body: Buffer.from(JSON.stringify(e)),
      contentType: 'application/json',
      msgID: e.id,
      ids: [e.id],
    });
    expect(unpack(message!)).toEqual([e]);
  });

  it('packs consecutive events in order, up to the most events and about the most bytes of a message', () => {
    const events = Array.from({ length: 7 }, (_, i) => event('k', i));
    const byCount = packEvents(events, { events: 3, bytes: 1_000_000 });
    expect(byCount.map((m) => m.ids.length)).toEqual([3, 3, 1]);
    expect(byCount.flatMap(unpack)).toEqual(events);

    const size = JSON.stringify(events[0]).length;
    const byBytes = packEvents(events, { events: 100, bytes: size * 2 + 10 });
    expect(byBytes.map((m) => m.ids.length)).toEqual([2, 2, 2, 1]);
    expect(byBytes.flatMap(unpack)).toEqual(events);
  });

  it('gives the same events the same message id, and other events another', () => {
    const events = Array.from({ length: 3 }, (_, i) => event('k', i));
    const limits = { events: 100, bytes: 1_000_000 };
    expect(packEvents(events, limits)[0]!.msgID).toBe(
      packEvents(
        events.map((e) => ({ ...e })),
        limits,
      )[0]!.msgID,
    );
    expect(packEvents(events, limits)[0]!.msgID).not.toBe(packEvents(events.slice(0, 2), limits)[0]!.msgID);
  });

  it('counts bytes, not characters, against the size of a message', () => {
    const wide = Array.from({ length: 4 }, (_, i) => ({ ...event('k', i), payload: { text: 'é'.repeat(1000) } })); // 2 bytes a character
    const size = Buffer.byteLength(JSON.stringify(wide[0]));
    expect(packEvents(wide, { events: 100, bytes: size * 2 + 2 }).map((m) => m.ids.length)).toEqual([2, 2]);
  });

  it('packs events sent again after a failed call as they were packed then, so JetStream drops what it stored', () => {
    const limits = { events: 3, bytes: 1_000_000 };
    const packer = createPacker(limits);
    const first = Array.from({ length: 5 }, (_, i) => event('k', i));
    const sent = packer.pack(2, first);
    expect(sent.map((m) => m.ids.length)).toEqual([3, 2]);
    packer.failed(2, sent);
    // The relay claims again: the same events and two more committed meanwhile.
    const again = [...first, event('k', 5), event('k', 6)];
    const resent = packer.pack(2, again);
    expect(resent.slice(0, 2).map((m) => m.msgID)).toEqual(sent.map((m) => m.msgID));
    expect(resent.slice(2).flatMap((m) => m.ids)).toEqual([again[5]!.id, again[6]!.id]);
    // Without the failure the same events would have gone otherwise: [3, 3, 1].
    expect(packEvents(again, limits).map((m) => m.ids.length)).toEqual([3, 3, 1]);
    // Stored: the next call packs afresh; other events never take the remembered groups.
    packer.stored(2);
    expect(packer.pack(2, again).map((m) => m.ids.length)).toEqual([3, 3, 1]);
    packer.failed(2, sent);
    expect(packer.pack(2, again.slice(1)).map((m) => m.ids.length)).toEqual([3, 3]);
  });

  it('refuses a body that is neither an event nor an array of events', () => {
    for (const body of [[], 'text', null, 42, [{ id: 'a' }, 'b'], { type: 'no id' }]) {
      expect(() => unpackEvents(Buffer.from(JSON.stringify(body)), undefined)).toThrow(/not an event|holds no event/);
    }
  });
});
