import { createClient } from 'redis';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors/app-error.ts';

const REDIS_CONNECT_TIMEOUT_MS = 5000;

/**
 * Connects the shared cache tier's client, or fails start-up with one line. Once connected, node-redis
 * reconnects by itself; the cache serves from its local tier and the database meanwhile.
 */
export async function connectRedis(url: string, logger: Logger) {
  const client = createClient({
    url,
    socket: {
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000),
    },
  });
  let lastError: unknown;
  client.on('error', (error) => {
    lastError = error;
    if (client.isReady) logger.warn({ err: error }, 'redis connection error');
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${REDIS_CONNECT_TIMEOUT_MS} ms`)),
          REDIS_CONNECT_TIMEOUT_MS,
        );
      }),
    ]);
    return client;
  } catch (error) {
    client.destroy();
    const where = new URL(url).host;
    const cause = (lastError as Error | undefined)?.message || (error as Error).message;
    throw new AppError('SERVICE.UNAVAILABLE', `cannot reach Redis at ${where}: ${cause}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
