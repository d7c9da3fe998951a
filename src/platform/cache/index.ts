export { invalidateOnEvents, type InvalidationRule } from './event-invalidation.ts';
export { createReadCache, type ReadCache } from './read-cache.ts';
export { createRedisTier } from './redis-tier.ts';
