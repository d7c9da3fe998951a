import type { ReadCacheObserver } from '../../src/platform/cache/read-cache.ts';

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise settled from outside: a gate a fake loader waits on, or a signal that it started. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A read cache observer that records what it saw and lets a test wait for a shared-tier invalidation. */
export function recordingObserver() {
  const answers: Array<'local' | 'shared' | 'miss'> = [];
  const waiting: Array<{ key: string | undefined; done: () => void }> = [];
  const observer: ReadCacheObserver = {
    onHit: (tier) => {
      answers.push(tier);
    },
    onMiss: () => {
      answers.push('miss');
    },
    onSharedInvalidation: (key) => {
      for (const w of waiting.filter((w) => w.key === key)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.done();
      }
    },
  };
  return {
    observer,
    answers,
    /** Resolves when this instance drops `key` (or everything, for `undefined`) on the shared tier's word. Call before the trigger. */
    invalidated(key: string | undefined): Promise<void> {
      return new Promise((done) => {
        waiting.push({ key, done });
      });
    },
  };
}
