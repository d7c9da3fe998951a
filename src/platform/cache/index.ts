export { invalidateOnEvents, type EventInvalidationOptions, type InvalidationRule } from './event-invalidation.ts';
export { createReadCache, type ReadCache, type ReadCacheObserver, type ReadCacheOptions } from './read-cache.ts';
export type { RedisTierClient } from './redis-client.ts';
export { createRedisTier, type RedisTier, type RedisTierOperation, type RedisTierOptions, type RedisTierPolicy } from './redis-tier.ts';
export type { SharedRead, SharedTier } from './shared-tier.ts';
