export interface PendingInvalidations {
  /** Remembers an invalidation that did not reach the shared tier. */
  keep(key: string): void;
  /** Sends the key's pending invalidation, if any; true when none is left. */
  settle(key: string): Promise<boolean>;
  /** Sends every pending invalidation, oldest first, until one fails or `canSend` says no. */
  replay(): Promise<void>;
}

export interface PendingInvalidationsOptions {
  /** Past this many the oldest is dropped: memory stays bounded through a long outage. */
  max: number;
  send(key: string): Promise<boolean>;
  canSend(): boolean;
  onDropped(key: string): void;
}

/**
 * Invalidations made while the shared tier was unreachable, kept to be sent once it is back, so a value
 * it still holds from before the write does not outlive the outage.
 * @example
 * const pending = createPendingInvalidations({ max: 10_000, send, canSend: () => client.isReady, onDropped });
 * if (!(await send(key))) pending.keep(key);   // later: client.on('ready', () => void pending.replay());
 */
export function createPendingInvalidations(options: PendingInvalidationsOptions): PendingInvalidations {
  // Insertion-ordered: the oldest is dropped first, and replayed first.
  const keys = new Set<string>();
  let replaying = false;

  return {
    keep(key) {
      keys.delete(key);
      keys.add(key);
      if (keys.size <= options.max) return;
      const oldest = keys.values().next().value as string;
      keys.delete(oldest);
      options.onDropped(oldest);
    },
    async settle(key) {
      if (!keys.has(key)) return true;
      if (!(await options.send(key))) return false;
      keys.delete(key);
      return true;
    },
    async replay() {
      if (replaying) return;
      replaying = true;
      try {
        for (const key of [...keys]) {
          if (!options.canSend() || !(await options.send(key))) return;
          keys.delete(key);
        }
      } finally {
        replaying = false;
      }
    },
  };
}
