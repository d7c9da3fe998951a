export { createRedisStreamsBroker } from './redis-streams-broker.ts';
