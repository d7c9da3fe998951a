import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from '../../src/platform/db/connect.ts';
import type { Broker } from '../../src/platform/messaging/broker.ts';
import { createPostgresBroker } from '../../src/platform/messaging/postgres/postgres-broker.ts';
import type { BrokerName } from './options.ts';

type Log = (message: string, error?: unknown) => void;

/** One broker under test: how to open it in a namespace of its own, and how to remove that namespace after. */
export interface BrokerTarget {
  name: BrokerName;
  /** For the report: where it runs. */
  where: string;
  open(namespace: string, group: string, log: Log): Promise<Broker>;
  /** Deletes what the namespace left on the broker; returns a note when something stays behind. */
  cleanUp(namespace: string, group: string, partitions: number): Promise<string | undefined>;
}

const MESSAGING_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/platform/messaging');

/**
 * The target for `name`, or why it cannot run: an adapter whose index.ts is not there yet. External brokers
 * come from RABBITMQ_URL, NATS_URL and REDIS_URL, else their default local ports.
 */
export function brokerTarget(
  name: BrokerName,
  env: Record<string, string | undefined>,
  sql: Sql,
): BrokerTarget | { missing: string } {
  if (name !== 'postgres' && !fs.existsSync(path.join(MESSAGING_DIR, name, 'index.ts'))) {
    return { missing: `src/platform/messaging/${name}/index.ts is not there` };
  }
  switch (name) {
    case 'postgres':
      return {
        name,
        where: 'the benchmark database',
        open: (namespace, _group, log) => createPostgresBroker({ sql, namespace, log }),
        // The database is the benchmark's own: it is emptied between brokers and dropped at the end.
        cleanUp: async () => undefined,
      };
    case 'rabbitmq': {
      const url = env.RABBITMQ_URL?.trim() || 'amqp://guest:guest@127.0.0.1:5672';
      return {
        name,
        where: redact(url),
        async open(namespace, group, log) {
          const { createRabbitMqBroker } = await import('../../src/platform/messaging/rabbitmq/index.ts');
          return createRabbitMqBroker({ url, namespace, groups: [group], log });
        },
        async cleanUp(namespace, group, partitions) {
          const [{ deleteNamespace, rabbitNames }, { default: amqp }] = await Promise.all([
            import('../../src/platform/messaging/rabbitmq/index.ts'),
            import('amqplib'),
          ]);
          const connection = await amqp.connect(url);
          try {
            const channel = await connection.createChannel();
            channel.on('error', () => {});
            await deleteNamespace(channel, rabbitNames(namespace), [group], partitions);
          } finally {
            await connection.close();
          }
          return undefined;
        },
      };
    }
    case 'nats': {
      const servers = env.NATS_URL?.trim() || 'nats://127.0.0.1:4222';
      return {
        name,
        where: redact(servers),
        async open(namespace, _group, log) {
          const { createNatsBroker } = await import('../../src/platform/messaging/nats/index.ts');
          return createNatsBroker({ servers, namespace, log });
        },
        async cleanUp(namespace) {
          const [{ natsLayout }, { connect }, { jetstreamManager }] = await Promise.all([
            import('../../src/platform/messaging/nats/index.ts'),
            import('@nats-io/transport-node'),
            import('@nats-io/jetstream'),
          ]);
          const nc = await connect({ servers });
          try {
            const jsm = await jetstreamManager(nc);
            const layout = natsLayout(namespace);
            // Deleting a stream deletes its consumers too.
            for (const stream of [layout.eventsStream, layout.deadLetterStream])
              await jsm.streams.delete(stream).catch(() => false);
          } finally {
            await nc.close();
          }
          return undefined;
        },
      };
    }
    case 'redis': {
      const url = env.REDIS_URL?.trim() || 'redis://127.0.0.1:6379';
      return {
        name,
        where: redact(url),
        async open(namespace, _group, log) {
          const { createRedisStreamsBroker } = await import('../../src/platform/messaging/redis/index.ts');
          return createRedisStreamsBroker({ url, namespace, log });
        },
        async cleanUp(namespace) {
          const { createClient } = await import('redis');
          const client = createClient({ url });
          client.on('error', () => {});
          await client.connect();
          try {
            // Every key of the namespace starts with it (see keys.ts).
            for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 500 })) {
              if (keys.length > 0) await client.del(keys);
            }
          } finally {
            client.destroy();
          }
          return undefined;
        },
      };
    }
  }
}

/** A URL without its password, for the report. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
