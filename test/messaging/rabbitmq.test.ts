import { randomUUID } from 'node:crypto';
import net from 'node:net';
import amqp from 'amqplib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  partitionOf,
  type Broker,
  type Delivery,
  type OutboxEvent,
  type Outcome,
} from '../../src/platform/messaging/broker.ts';
import {
  createRabbitMqBroker,
  deleteNamespace,
  rabbitNames,
  type RabbitMqBrokerOptions,
} from '../../src/platform/messaging/rabbitmq/index.ts';
import { claimCandidates, partitionsToRelease, shareOf } from '../../src/platform/messaging/rabbitmq/share.ts';
import { describeBrokerContract, event, eventually, eventuallyAsync } from './contract.ts';

const url = process.env.RABBITMQ_URL;
const ACK: Outcome = { kind: 'ack' };

describe("rabbitmq: sharing a group's partitions", () => {
  it('gives each member an even share, rounded up, within its own limit', () => {
    expect([1, 2, 3, 8, 9].map((members) => shareOf(8, members))).toEqual([8, 4, 3, 1, 1]);
    expect(shareOf(8, 0)).toBe(8);
    expect(shareOf(8, 1, 2)).toBe(2);
  });

  it('lets the highest partitions go and claims the rest in order', () => {
    expect(partitionsToRelease([3, 0, 7, 5], 2)).toEqual([7, 5]);
    expect(partitionsToRelease([1, 2], 4)).toEqual([]);
    expect(claimCandidates(6, [0, 4], [2])).toEqual([1, 3, 5]);
  });
});

if (!url) {
  console.log('[stratum tests] RABBITMQ_URL not set: skipping the RabbitMQ broker tests');
  describe.skip('rabbitmq broker (needs RABBITMQ_URL)', () => {
    it('runs the broker contract against RabbitMQ', () => {});
  });
} else {
  const rabbitUrl = url;
  /** Namespaces and groups the tests created: deleted at the end so runs do not pile up queues. */
  const created = new Map<string, Set<string>>();
  const groupsOf = (namespace: string) => created.get(namespace) ?? created.set(namespace, new Set()).get(namespace)!;

  async function open(options: Partial<RabbitMqBrokerOptions> & { namespace: string }): Promise<Broker> {
    const broker = await createRabbitMqBroker({ url: rabbitUrl, ...options });
    const groups = groupsOf(options.namespace);
    for (const group of options.groups ?? []) groups.add(group);
    return {
      name: broker.name,
      partitions: broker.partitions,
      deadLetters: broker.deadLetters,
      publish: (events) => broker.publish(events),
      subscribe: (group, subscribeOptions) => {
        groups.add(group);
        return broker.subscribe(group, subscribeOptions);
      },
      follow: (listener) => broker.follow(listener),
      close: () => broker.close(),
    };
  }

  async function withRawChannel<T>(use: (ch: amqp.Channel) => Promise<T>): Promise<T> {
    const connection = await amqp.connect(rabbitUrl);
    try {
      const ch = await connection.createChannel();
      ch.on('error', () => {});
      return await use(ch);
    } finally {
      await connection.close();
    }
  }

  afterAll(async () => {
    await withRawChannel(async (ch) => {
      for (const [namespace, groups] of created) await deleteNamespace(ch, rabbitNames(namespace), groups, 8);
    });
  });

  describeBrokerContract({ name: 'rabbitmq', make: (namespace) => open({ namespace }) });

  describe('rabbitmq: the adapter', () => {
    const opened: Broker[] = [];
    const stops: Array<() => Promise<void>> = [];
    const proxies: Array<{ close(): Promise<void> }> = [];
    afterEach(async () => {
      await Promise.all(stops.splice(0).map((stop) => stop().catch(() => {})));
      await Promise.all(opened.splice(0).map((b) => b.close().catch(() => {})));
      await Promise.all(proxies.splice(0).map((p) => p.close()));
    });
    const make = async (options: Partial<RabbitMqBrokerOptions> = {}) => {
      const broker = await open({ namespace: `r${randomUUID().slice(0, 8)}`, ...options });
      opened.push(broker);
      return broker;
    };
    const subscribe = async (broker: Broker, group: string, handle: (d: Delivery) => Promise<Outcome>) => {
      const s = await broker.subscribe(group, { handle });
      stops.push(() => s.stop());
      return s;
    };
    /** One key per partition, so a test can reach every partition. */
    const keyOfPartition = Array.from({ length: 8 }, (_, p) => {
      for (let i = 0; ; i++) if (partitionOf(`key-${i}`, 8) === p) return `key-${i}`;
    });

    it('resolves publish once RabbitMQ holds the events: persistent, in their partition queues, kept for a declared group', async () => {
      const namespace = `r${randomUUID().slice(0, 8)}`;
      const broker = await make({ namespace, groups: ['audit'] });
      const events = Array.from({ length: 40 }, (_, i) => event(`k${i % 10}`, i));
      await broker.publish(events);
      const names = rabbitNames(namespace);
      await withRawChannel(async (ch) => {
        for (let p = 0; p < 8; p++) {
          const expected = events.filter((e) => partitionOf(e.key, 8) === p);
          expect((await ch.checkQueue(names.partitionQueue('audit', p))).messageCount).toBe(expected.length);
          for (const e of expected) {
            const message = await ch.get(names.partitionQueue('audit', p), { noAck: true });
            expect(message).not.toBe(false);
            if (!message) return;
            expect(message.properties).toMatchObject({
              messageId: e.id,
              deliveryMode: 2,
              contentType: 'application/json',
            });
            expect(JSON.parse(message.content.toString())).toEqual(e);
          }
        }
      });
    });

    it('rejects publish when RabbitMQ nacks an event', async () => {
      const namespace = `r${randomUUID().slice(0, 8)}`;
      const broker = await make({ namespace });
      const names = rabbitNames(namespace);
      const full = `${namespace}.full.p0`;
      groupsOf(namespace).add('full');
      await withRawChannel(async (ch) => {
        await ch.assertQueue(full, { durable: true, arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' } });
        await ch.bindQueue(full, names.events, names.partitionKey(0));
      });
      await expect(broker.publish([event(keyOfPartition[0]!, 1)])).rejects.toThrow(/did not confirm/);
      await broker.publish([event(keyOfPartition[1]!, 2)]); // the channel is still usable
    });

    it('gives back an event whose handler threw, and hands it over again before the next event of its partition', async () => {
      const broker = await make({ redeliverDelayMs: 20 });
      const seen: number[] = [];
      let thrown = false;
      await subscribe(broker, 'g', async (d) => {
        const n = (d.event.payload as { n: number }).n;
        seen.push(n);
        if (n === 1 && !thrown) {
          thrown = true;
          throw new Error('unexpected');
        }
        return ACK;
      });
      await broker.publish([event('same', 1), event('same', 2), event('same', 3)]);
      await eventually(() => seen.includes(3), 'all three events');
      expect(seen).toEqual([1, 1, 2, 3]);
    });

    it('splits a group between members, and gives all partitions back to the one left when the other stops', async () => {
      const namespace = `r${randomUUID().slice(0, 8)}`;
      const [one, two] = [await make({ namespace }), await make({ namespace })];
      const handledBy = new Map<string, { by: string; partition: number }>();
      const record = (by: string) => async (d: Delivery) => {
        handledBy.set(d.event.id, { by, partition: d.partition });
        return ACK;
      };
      await subscribe(one, 'w', record('one'));
      const second = await two.subscribe('w', { handle: record('two') });
      /** Publishes one event per partition and says which member handled each partition. */
      const round = async () => {
        const events = keyOfPartition.map((key, n) => event(key, n));
        await one.publish(events);
        await eventually(() => events.every((e) => handledBy.has(e.id)), 'a round of 8 events');
        return events.map((e) => handledBy.get(e.id)!.by);
      };
      const split = await eventuallyAsync(round, (bys) => bys.filter((b) => b === 'two').length === 4, 'an even split');
      expect(split.filter((b) => b === 'one')).toHaveLength(4);
      await second.stop();
      await eventuallyAsync(round, (bys) => bys.every((b) => b === 'one'), 'one member holding every partition');
    });

    it('publishes again and resumes its subscription after the connection to RabbitMQ was lost', async () => {
      const proxy = await startProxy(new URL(rabbitUrl));
      proxies.push(proxy);
      const namespace = `r${randomUUID().slice(0, 8)}`;
      const logs: string[] = [];
      const cut = await make({
        namespace,
        url: proxy.url,
        rebalanceMs: 200,
        maxReconnectDelayMs: 300,
        log: (m) => logs.push(m),
      });
      const direct = await make({ namespace });
      const got: OutboxEvent[] = [];
      await subscribe(cut, 'g', async (d) => {
        got.push(d.event);
        return ACK;
      });
      const before = event('a', 1);
      await cut.publish([before]);
      await eventually(() => got.length === 1, 'the first event');

      proxy.down();
      await eventually(() => logs.some((m) => m.includes('connection lost')), 'the adapter to notice');
      await expect(cut.publish([event('a', 2)])).rejects.toThrow();
      const during = event('a', 3);
      await direct.publish([during]);
      proxy.up();

      await eventually(() => got.some((e) => e.id === during.id), 'the event published while the connection was down');
      await eventuallyAsync(
        () =>
          cut.publish([event('a', 4)]).then(
            () => true,
            () => false,
          ),
        (ok) => ok,
        'publish to work again',
      );
      expect(logs).toContain('rabbitmq: reconnected');
      // At least once: `before` may come twice, when its ack was still in the cut socket's buffer.
      expect([...new Set(got.map((e) => e.id))].slice(0, 2)).toEqual([before.id, during.id]);
    });

    it('deletes what a namespace declared', async () => {
      const namespace = `r${randomUUID().slice(0, 8)}`;
      const broker = await make({ namespace });
      await subscribe(broker, 'g', async () => ACK);
      await Promise.all(stops.splice(0).map((stop) => stop()));
      await broker.close();
      const names = rabbitNames(namespace);
      await withRawChannel((ch) => deleteNamespace(ch, names, ['g'], 8));
      for (const queue of [names.partitionQueue('g', 0), names.deadLetterQueue('g'), names.membersQueue('g')]) {
        await expect(withRawChannel((ch) => ch.checkQueue(queue))).rejects.toThrow(/NOT_FOUND/);
      }
      await expect(withRawChannel((ch) => ch.checkExchange(names.events))).rejects.toThrow(/NOT_FOUND/);
    });
  });
}

/**
 * A TCP proxy in front of RabbitMQ that the test can cut: down() drops every connection through it and refuses
 * new ones until up(). The adapter sees a real network failure against the real server.
 */
async function startProxy(target: URL): Promise<{ url: string; down(): void; up(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepting = true;
  const server = net.createServer((client) => {
    if (!accepting) return void client.destroy();
    const upstream = net.connect(Number(target.port || 5672), target.hostname);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', end);
      socket.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxied = new URL(target.href);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as net.AddressInfo).port);
  return {
    url: proxied.href,
    down() {
      accepting = false;
      for (const socket of sockets) socket.destroy();
    },
    up() {
      accepting = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
