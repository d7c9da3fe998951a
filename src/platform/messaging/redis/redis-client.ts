import type { createClient } from 'redis';

/** A node-redis v5 client as `createClient({ url })` makes it; the adapter creates and owns all of its own. */
export type RedisStreamsClient = ReturnType<typeof createClient>;

/** Where the adapter reports what it recovers from by itself (lost connections, handler crashes). */
export type Log = (message: string, error?: unknown) => void;

/**
 * Connects a client the adapter made, reporting its errors to `log` (node-redis reconnects by itself; an
 * unheard 'error' event would crash the process).
 * @example const client = await connectClient(createClient({ url }), log, 'publisher');
 */
export async function connectClient(client: RedisStreamsClient, log: Log, role: string): Promise<RedisStreamsClient> {
  client.on('error', (error: unknown) => log(`redis streams broker: ${role} connection error`, error));
  try {
    await client.connect();
  } catch (error) {
    destroyClient(client);
    throw error;
  }
  return client;
}

/** Closes a client at once, whatever it is doing; idempotent. */
export function destroyClient(client: RedisStreamsClient): void {
  if (client.isOpen) client.destroy();
}
