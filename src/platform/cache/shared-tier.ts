/**
 * What a read of the shared tier found: the value, or a miss with the key's version as read before the
 * caller loads. `version: null` means "do not write back" (the tier is unreachable, or an invalidation of
 * this key has not reached it yet).
 */
export type SharedRead = { found: true; value: unknown } | { found: false; version: string | null };

/**
 * The port a read cache uses for a tier shared by every instance (Redis: see redis-tier.ts). Its methods
 * never reject: a failing tier degrades to a miss and reports through its own error callback.
 */
export interface SharedTier {
  /** The namespace its keys and invalidation channel live under; the read cache must use the same one. */
  readonly namespace: string;
  read(key: string): Promise<SharedRead>;
  /** Stores `value` only if the key's version is still `version`, i.e. no invalidation happened since the read. */
  writeIfUnchanged(key: string, value: unknown, version: string): Promise<void>;
  /** Bumps the key's version, drops its value and tells every instance (this one included) to drop it. */
  invalidate(key: string): Promise<void>;
  /**
   * Sets the one listener for invalidations from any instance: a key, or `undefined` after a gap in which
   * invalidations may have been missed (the subscription was re-established), meaning "drop everything".
   */
  onInvalidation(listener: (key: string | undefined) => void): void;
  /** Releases what the tier opened itself (not the client it was given). */
  close(): Promise<void>;
}

/** A miss that must not be written back. */
export const MISS_WITHOUT_WRITE_BACK: SharedRead = Object.freeze({ found: false, version: null });
