import { describe, expect, it } from 'vitest';
import { packEvents, unpackEvents } from '../../src/platform/messaging/nats/nats-publish.ts';
import { event } from './contract.ts';

describe('the events of a NATS message', () => {
  it('packs one event as itself, with its id as the message id', () => {
    const e = event('k', 1);
    const [message, ...rest] = packEvents([e], { events: 100, bytes: 1024 });
    expect(rest).toEqual([]);
    expect(message).toEqual({ body: JSON.stringify(e), msgID: e.id, count: 1 });
    expect(unpackEvents(JSON.parse(message!.body))).toEqual([e]);
  });

  it('packs consecutive events in order, up to the most events and about the most bytes of a message', () => {
    const events = Array.from({ length: 7 }, (_, i) => event('k', i));
    const byCount = packEvents(events, { events: 3, bytes: 1_000_000 });
    expect(byCount.map((m) => m.count)).toEqual([3, 3, 1]);
    expect(byCount.flatMap((m) => unpackEvents(JSON.parse(m.body)))).toEqual(events);

    const size = JSON.stringify(events[0]).length;
    const byBytes = packEvents(events, { events: 100, bytes: size * 2 + 10 });
    expect(byBytes.map((m) => m.count)).toEqual([2, 2, 2, 1]);
    expect(byBytes.flatMap((m) => unpackEvents(JSON.parse(m.body)))).toEqual(events);
  });

  it('gives the same events the same message id, and other events another', () => {
    const events = Array.from({ length: 3 }, (_, i) => event('k', i));
    const limits = { events: 100, bytes: 1_000_000 };
    expect(packEvents(events, limits)[0]!.msgID).toBe(packEvents(events.map((e) => ({ ...e })), limits)[0]!.msgID);
    expect(packEvents(events, limits)[0]!.msgID).not.toBe(packEvents(events.slice(0, 2), limits)[0]!.msgID);
  });

  it('refuses a body that is neither an event nor an array of events', () => {
    for (const body of [[], 'text', null, 42, [{ id: 'a' }, 'b'], { type: 'no id' }]) {
      expect(() => unpackEvents(body)).toThrow(/not an event/);
    }
  });
});
