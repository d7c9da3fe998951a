import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { partitionOf, type Broker, type OutboxEvent } from '../../src/platform/messaging/broker.ts';
import { createNatsBroker } from '../../src/platform/messaging/nats/nats-broker.ts';
import { natsLayout } from '../../src/platform/messaging/nats/nats-layout.ts';
import { describeBrokerContract, event, eventually, eventuallyAsync } from './contract.ts';

const NATS_URL = process.env.NATS_URL;
if (!NATS_URL) console.log('[stratum tests] NATS_URL not set: skipping the NATS broker tests');

(NATS_URL ? describe : describe.skip)('nats broker', () => {
  const url = NATS_URL!;
  const namespaces = new Set<string>();
  // A short ack wait so an event whose consumer went away comes again within the test's bound.
  const make = (namespace: string) => {
    namespaces.add(namespace);
    return createNatsBroker({ servers: url, namespace, ackWaitMs: 3000, retryDelayMs: 200 });
  };

  afterAll(async () => {
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    for (const namespace of namespaces) {
      const layout = natsLayout(namespace);
      // Deleting a stream deletes its consumers.
      for (const stream of [layout.eventsStream, layout.deadLetterStream])
        await jsm.streams.delete(stream).catch(() => false);
    }
    await nc.close();
  });

  describeBrokerContract({ name: 'nats', make });

  describe('nats adapter', () => {
    const opened: Broker[] = [];
    afterAll(async () => {
      await Promise.all(opened.map((b) => b.close()));
    });

    it('leaves no consumer behind once a follower stopped', async () => {
      const ns = `n${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      opened.push(broker);
      const heard: OutboxEvent[] = [];
      const follower = await broker.follow({ onEvents: (events) => heard.push(...events), onGap: () => {} });
      const e = event('k', 1);
      await broker.publish([e]);
      await eventually(() => heard.length === 1, 'the follower to hear the event');
      const nc = await connect({ servers: url });
      try {
        const jsm = await jetstreamManager(nc);
        const count = async () => (await jsm.consumers.list(natsLayout(ns).eventsStream).next()).length;
        expect(await count()).toBe(1);
        await follower.stop();
        await eventuallyAsync(count, (n) => n === 0, 'the ordered consumer to be gone');
      } finally {
        await nc.close();
      }
    });

    it('stores an event once on its partition subject, dropping a second publish of the same id', async () => {
      const ns = `n${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      opened.push(broker);
      const e = event('account-7', 1);
      await broker.publish([e]);
      await broker.publish([e]);
      const nc = await connect({ servers: url });
      try {
        const jsm = await jetstreamManager(nc);
        const layout = natsLayout(ns);
        const info = await jsm.streams.info(layout.eventsStream, { subjects_filter: '>' });
        expect(info.state.messages).toBe(1);
        expect(info.state.subjects).toEqual({ [layout.eventSubject(partitionOf(e.key, broker.partitions))]: 1 });
        const stored = await jsm.streams.getMessage(layout.eventsStream, { seq: info.state.first_seq });
        expect(stored?.header.get('Nats-Msg-Id')).toBe(e.id);
        expect(stored?.json()).toEqual(e);
      } finally {
        await nc.close();
      }
    });

    it("sends a partition's consecutive events in one message, dropping a re-send of the same events", async () => {
      const ns = `n${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      opened.push(broker);
      const events = [event('same', 1), event('same', 2), event('same', 3)];
      await broker.publish(events);
      await broker.publish(events);
      await broker.publish(events.slice(0, 2)); // other events together: not a re-send
      const nc = await connect({ servers: url });
      try {
        const jsm = await jetstreamManager(nc);
        const layout = natsLayout(ns);
        const info = await jsm.streams.info(layout.eventsStream);
        expect(info.state.messages).toBe(2);
        const first = await jsm.streams.getMessage(layout.eventsStream, { seq: info.state.first_seq });
        expect(first?.json()).toEqual(events);
      } finally {
        await nc.close();
      }
      const sub = await broker.subscribe('g', {
        handle: async () => ({ kind: 'ack' }),
        handleBatch: async (ds) =>
          ds.map((d) =>
            (d.event.payload as { n: number }).n === 2
              ? { kind: 'ack' }
              : { kind: 'dead-letter', error: 'no', attempts: 1 },
          ),
      });
      try {
        // Two dead letters out of one message are two letters, not a duplicate of one.
        const letters = await eventuallyAsync(
          () => broker.deadLetters.list('g', 10),
          (l) => l.length === 3,
          'the dead letters of both messages',
        );
        expect(letters.map((l) => l.event.id)).toEqual([events[0]!.id, events[2]!.id, events[0]!.id]);
      } finally {
        await sub.stop();
      }
    });

    it('keeps apart groups whose names are not subject tokens, even when one looks like the other encoded', async () => {
      const ns = `n${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      opened.push(broker);
      const dotted: string[] = [];
      const lookalike: string[] = [];
      const subs = [
        await broker.subscribe('users.score-fanout', {
          handle: async (d) => {
            dotted.push(d.event.id);
            return { kind: 'dead-letter', error: 'no', attempts: 1 };
          },
        }),
        await broker.subscribe('users~2Escore-fanout', {
          handle: async (d) => {
            lookalike.push(d.event.id);
            return { kind: 'ack' };
          },
        }),
      ];
      try {
        const e = event('k', 1);
        await broker.publish([e]);
        await eventually(() => dotted.length === 1 && lookalike.length === 1, 'both groups to get the event');
        const letters = await eventuallyAsync(
          () => broker.deadLetters.list('users.score-fanout', 10),
          (l) => l.length === 1,
          'the dead letter',
        );
        expect(letters[0]).toMatchObject({ group: 'users.score-fanout', event: { id: e.id } });
        expect(await broker.deadLetters.list('users~2Escore-fanout', 10)).toEqual([]);
        expect(await broker.deadLetters.get('users~2Escore-fanout', letters[0]!.id)).toBeUndefined();
        await expect(broker.subscribe('', { handle: async () => ({ kind: 'ack' }) })).rejects.toMatchObject({
          code: 'REQUEST.INVALID',
        });
      } finally {
        await Promise.all(subs.map((s) => s.stop()));
      }
    });

    it('delivers again, before the partition goes on, an event whose handler threw', async () => {
      const ns = `n${randomUUID().slice(0, 8)}`;
      const broker = await make(ns);
      opened.push(broker);
      const seen: number[] = [];
      let thrown = false;
      const sub = await broker.subscribe('g', {
        handle: async (d) => {
          const n = (d.event.payload as { n: number }).n;
          seen.push(n);
          if (n === 1 && !thrown) {
            thrown = true;
            throw new Error('unexpected');
          }
          return { kind: 'ack' };
        },
      });
      try {
        await broker.publish([event('same', 1), event('same', 2)]);
        await eventually(() => seen.length >= 3, 'the retry and the next event');
        expect(seen).toEqual([1, 1, 2]);
      } finally {
        await sub.stop();
      }
    });

    it('keeps an event from other consumers while its handler runs past the ack wait', async () => {
      const ns = `n${randomUUID().slice(0, 8)}`;
      const [one, two] = [await make(ns), await make(ns)];
      opened.push(one, two);
      const starts: string[] = [];
      let finished = 0;
      const slow = async (d: { event: { id: string } }) => {
        starts.push(d.event.id);
        await new Promise((r) => setTimeout(r, 4500)); // longer than the 3 s ack wait
        finished++;
        return { kind: 'ack' } as const;
      };
      const subs = [await one.subscribe('g', { handle: slow }), await two.subscribe('g', { handle: slow })];
      try {
        const e = event('k', 1);
        await one.publish([e]);
        await eventually(() => finished === 1, 'the slow handler to finish');
        expect(starts).toEqual([e.id]);
      } finally {
        await Promise.all(subs.map((s) => s.stop()));
      }
    }, 20_000);
  });
});
