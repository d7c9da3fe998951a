import type { FollowOptions, OutboxEvent, Subscription } from '../messaging/broker.ts';
import type { ReadCache } from './read-cache.ts';

/** Which keys of which cache an event makes stale. */
export interface InvalidationRule {
  cache: Pick<ReadCache<unknown>, 'forget'>;
  /** The keys the event's change makes stale; none for events the cache does not care about. */
  keysOf(event: OutboxEvent): readonly string[];
}

export interface EventInvalidationOptions {
  /** A broker's `follow`: every event published from now on, in this process. */
  follow(listener: FollowOptions): Promise<Subscription>;
  rules: readonly InvalidationRule[];
  /** Called for a rule that threw on an event (the event is skipped for that rule). */
  onError?(error: unknown, event: OutboxEvent): void;
}

/**
 * Drops, in this instance's read caches, what other instances' writes made stale, as their events arrive (the
 * cross-instance invalidation when no shared tier carries it; decision 0017). When the broker says events may
 * have been missed, every cache of the rules is emptied.
 * @example
 * const following = await invalidateOnEvents({ follow: (l) => broker.follow(l), rules: [
 *   { cache: notes, keysOf: (e) => (e.type === 'note.edited' ? [`note:${e.key}`] : []) },
 * ] });
 * await following.stop();
 */
export function invalidateOnEvents(options: EventInvalidationOptions): Promise<Subscription> {
  return options.follow({
    onEvents(events) {
      for (const event of events) {
        for (const rule of options.rules) {
          let keys: readonly string[];
          try {
            keys = rule.keysOf(event);
          } catch (error) {
            options.onError?.(error, event);
            continue;
          }
          for (const key of keys) rule.cache.forget(key);
        }
      }
    },
    onGap() {
      for (const rule of new Set(options.rules.map((r) => r.cache))) rule.forget(undefined);
    },
  });
}
