/**
 * Where one broker namespace lives in Redis. Every name starts with the namespace, so `SCAN <namespace>:*`
 * finds all of it.
 * @example
 * const keys = redisStreamsKeys('stratum');
 * keys.events(3) // 'stratum:events:p3'
 * keys.lease('billing', 3) // 'stratum:lease:billing:p3'
 */
export function redisStreamsKeys(namespace: string) {
  return {
    /** The stream of partition `p`, read by every group. */
    events: (p: number) => `${namespace}:events:p${p}`,
    /** Dead letters replayed to one group, read only by that group's holder of partition `p`. */
    replay: (group: string, p: number) => `${namespace}:replay:${group}:p${p}`,
    /** Which consumer of the group holds partition `p` (a string with a TTL). */
    lease: (group: string, p: number) => `${namespace}:lease:${group}:p${p}`,
    /** The group's live consumers: a sorted set scored by when each heartbeat runs out. */
    members: (group: string) => `${namespace}:members:${group}`,
    /** The group's dead letters (a stream: the entry id is the dead letter's id). */
    deadLetters: (group: string) => `${namespace}:dlq:${group}`,
    /** Pub/sub: a consumer joined or released partitions, so the others rebalance now rather than at their next tick. */
    rebalance: (group: string) => `${namespace}:rebalance:${group}`,
  };
}

export type RedisStreamsKeys = ReturnType<typeof redisStreamsKeys>;
