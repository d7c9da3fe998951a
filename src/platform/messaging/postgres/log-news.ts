/**
 * What the log's NOTIFYs said, per partition: a counter that moves with every notice, and waiters woken by it.
 * A consumer reads the counter before it reads the log and waits only if it has not moved since, so a notice
 * that arrives while it is reading is never slept through.
 */
export interface LogNews {
  /** The partition's notice counter; `'any'` counts the notices about any partition. */
  seen(partition: number | 'any'): number;
  /** Resolves once the partition's counter differs from `since`, after `ms`, or when `signal` aborts. */
  wait(partition: number | 'any', since: number, ms: number, signal?: AbortSignal): Promise<void>;
  /** Records a notice: for these partitions, or for all of them (`undefined`). */
  arrived(partitions: readonly number[] | undefined): void;
  /** Wakes every waiter (closing). */
  wakeAll(): void;
}

/** The channel of the log's NOTIFYs: new events (see logNotice) and rebalance requests (see rebalanceNotice). */
export const LOG_CHANNEL = 'stratum_log';

/** The advisory lock publishers hold from before their rows get a seq until they commit, so rows commit in seq order. */
export function logLockName(namespace: string): string {
  return `messaging.log:${namespace}`;
}

/**
 * The payload of a log NOTIFY: the namespace, a space, and the partitions that got events, comma-separated.
 * @example logNotice('stratum', [0, 3]) // 'stratum 0,3'
 */
export function logNotice(namespace: string, partitions: Iterable<number>): string {
  return `${namespace} ${[...new Set(partitions)].sort((a, b) => a - b).join(',')}`;
}

/**
 * The partitions a NOTIFY payload names for `namespace`: a list, `undefined` for "all" (a payload with the
 * namespace alone), or null when the notice is about another namespace.
 * @example parseLogNotice('stratum 0,3', 'stratum') // [0, 3]
 */
export function parseLogNotice(payload: string, namespace: string): number[] | undefined | null {
  if (payload === namespace) return undefined;
  if (!payload.startsWith(`${namespace} `)) return null;
  const partitions = payload
    .slice(namespace.length + 1)
    .split(',')
    .map(Number);
  return partitions.every(Number.isInteger) ? partitions : undefined;
}

/**
 * The payload of a NOTIFY asking the group's consumers to rebalance now (one joined, or let partitions go).
 * @example rebalanceNotice('stratum', 'billing') // 'stratum\trebalance\tbilling'
 */
export function rebalanceNotice(namespace: string, group: string): string {
  return `${namespace}\trebalance\t${group}`;
}

/** The group a rebalance notice of `namespace` names, or null for any other payload. */
export function parseRebalanceNotice(payload: string, namespace: string): string | null {
  const prefix = `${namespace}\trebalance\t`;
  return payload.startsWith(prefix) ? payload.slice(prefix.length) : null;
}

/**
 * The news board of one broker with `partitions` partitions.
 * @example const news = createLogNews(8); const since = news.seen(3); ...read... await news.wait(3, since, 500);
 */
export function createLogNews(partitions: number): LogNews {
  // One slot per partition, and the last one for 'any'.
  const counters = new Array<number>(partitions + 1).fill(0);
  const waiters = Array.from({ length: partitions + 1 }, () => new Set<() => void>());
  const slot = (partition: number | 'any') => (partition === 'any' ? partitions : partition);
  const wake = (p: number) => {
    counters[p] = counters[p]! + 1;
    for (const done of [...waiters[p]!]) done();
  };

  return {
    seen: (partition) => counters[slot(partition)]!,
    wait(partition, since, ms, signal) {
      const p = slot(partition);
      if (counters[p] !== since || signal?.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters[p]!.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        waiters[p]!.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    },
    arrived(list) {
      for (const p of list ?? counters.keys()) if (p >= 0 && p < partitions) wake(p);
      wake(partitions);
    },
    wakeAll() {
      for (let p = 0; p <= partitions; p++) wake(p);
    },
  };
}
