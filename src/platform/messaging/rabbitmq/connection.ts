import amqp, { type ChannelModel } from 'amqplib';
import { errorMessage } from './amqp-error.ts';

/** One AMQP connection that reconnects by itself (amqplib's recovery: exponential backoff with jitter). */
export interface AmqpConnection {
  /** The live connection, or undefined while it is down (callers fail fast instead of waiting). */
  current(): ChannelModel | undefined;
  /** Calls `listener` with every new connection after the first (channels and consumers died with the old one); returns its remover. */
  onReconnect(listener: (model: ChannelModel) => void): () => void;
  close(): Promise<void>;
}

export interface AmqpConnectionOptions {
  url: string;
  /** Shown by `rabbitmqctl list_connections name`. */
  name: string;
  /** Attempts after the first failed one before the start gives up (later outages are retried forever). */
  connectRetries: number;
  /** Longest wait between reconnection attempts. */
  maxReconnectDelayMs: number;
  log: (message: string, error?: unknown) => void;
}

/**
 * Opens the connection; resolves once the first attempt (or one of its retries) succeeded.
 * @example const connection = await openAmqpConnection({ url, name: 'stratum', connectRetries: 2, maxReconnectDelayMs: 5000, log });
 */
export async function openAmqpConnection(options: AmqpConnectionOptions): Promise<AmqpConnection> {
  const { log } = options;
  const recovering = await amqp.connect(options.url, {
    clientProperties: { connection_name: options.name },
    // No Nagle: a lone publish or ack would otherwise wait for the server's delayed TCP ack (about 24 ms here for
    // each confirm of a one-event publish while a consumer shares the connection; 1 ms without).
    noDelay: true,
    recovery: {
      initialDelay: 100,
      maxDelay: options.maxReconnectDelayMs,
      initialMaxRetries: options.connectRetries,
      waitForConnect: false,
    },
  });
  let current: ChannelModel | undefined;
  let connectedBefore = false;
  const listeners = new Set<(model: ChannelModel) => void>();
  recovering.on('connect', (model: ChannelModel) => {
    current = model;
    if (connectedBefore) {
      log('rabbitmq: reconnected');
      for (const listener of listeners) listener(model);
    }
    connectedBefore = true;
  });
  recovering.on('disconnect', (error: Error) => {
    current = undefined;
    log(`rabbitmq: connection lost (${errorMessage(error)}); reconnecting`, error);
  });
  recovering.on('reconnect-scheduled', (info: { attempt: number; delay: number }) => {
    if (connectedBefore) log(`rabbitmq: reconnection attempt ${info.attempt} in ${info.delay} ms`);
  });
  recovering.on('error', (error: Error) => log(`rabbitmq: ${errorMessage(error)}`, error));
  recovering.on('handler-error', (error: Error, event: string) => log(`rabbitmq: a '${event}' listener threw`, error));
  await recovering.waitForConnect();
  return {
    current: () => current,
    onReconnect(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async close() {
      current = undefined;
      await recovering.close();
    },
  };
}
