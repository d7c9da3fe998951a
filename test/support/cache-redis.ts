import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createClient } from 'redis';

export type TestRedisClient = ReturnType<typeof createClient>;

/** A namespace no other test or run uses, so parallel runs on one Redis do not meet. */
export function uniqueNamespace(): string {
  return `stratum-test:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** A connected client that keeps reconnecting by itself (errors are the test's to observe, not to crash on). */
export async function connectRedis(url: string): Promise<TestRedisClient> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Deletes every key of a namespace; returns how many there were. */
export async function deleteNamespace(client: TestRedisClient, namespace: string): Promise<number> {
  let deleted = 0;
  for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 500 })) {
    if (keys.length > 0) deleted += await client.del(keys);
  }
  return deleted;
}

/** A redis:// URL on a local port nothing listens on. */
export async function closedPortUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `redis://127.0.0.1:${port}`;
}

/** Resolves on the next `event` of a client (not `events.once`, which would reject on an 'error' meanwhile). */
export function nextEvent(
  emitter: { once(event: string, listener: () => void): unknown },
  event: string,
): Promise<void> {
  return new Promise((resolve) => {
    emitter.once(event, () => resolve());
  });
}
