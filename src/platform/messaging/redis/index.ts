export { createRedisStreamsBroker, type RedisStreamsBrokerOptions } from './redis-streams-broker.ts';
export { redisStreamsKeys, type RedisStreamsKeys } from './keys.ts';
