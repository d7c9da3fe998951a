import type { ScriptClient } from './redis-layout.ts';

/**
 * The part of a node-redis v5 client the Redis tier uses; a `createClient()` result fits. Named structurally
 * so a client with modules, scripts or RESP3 fits too.
 */
export interface RedisTierClient extends ScriptClient {
  readonly isReady: boolean;
  mGet(keys: string[]): Promise<Array<string | null>>;
  duplicate(): RedisSubscriberClient;
  on(event: 'ready', listener: () => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
}

/** The second connection the tier opens (with `duplicate()`) to hear invalidations. */
export interface RedisSubscriberClient {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  destroy(): void;
}
