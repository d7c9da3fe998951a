import { createHash } from 'node:crypto';
import type { RedisStreamsClient } from './redis-client.ts';

export interface LuaScript {
  readonly source: string;
  readonly sha1: string;
}

function lua(source: string): LuaScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

/**
 * Runs a script by its hash and sends its source only when the server does not know it yet.
 * @example await runScript(client, RENEW_LEASE, [keys.lease(group, 0)], [consumer, '10000']);
 */
export async function runScript(
  client: RedisStreamsClient,
  script: LuaScript,
  keys: string[],
  args: string[],
): Promise<unknown> {
  try {
    return await client.evalSha(script.sha1, { keys, arguments: args });
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return client.eval(script.source, { keys, arguments: args });
  }
}

/**
 * KEYS: lease. ARGV: consumer, lease ms. Returns 1 if the consumer holds the lease now: it was free (SET NX PX)
 * or already the consumer's (renewed), so a consumer never locks itself out of a lease it still has.
 */
export const ACQUIRE_LEASE = lua(`
local owner = redis.call('GET', KEYS[1])
if owner == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`);

/** KEYS: lease. ARGV: consumer, lease ms. Compare and renew: returns 0 if the lease ran out or is someone else's. */
export const RENEW_LEASE = lua(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`);

/** KEYS: lease. ARGV: consumer. Compare and delete: never frees a lease another consumer took meanwhile. */
export const RELEASE_LEASE = lua(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`);

/**
 * KEYS: members. ARGV: consumer, ttl ms. Records the consumer as live until now + ttl, forgets those whose
 * time ran out, and returns how many are live. "Now" is the Redis server's clock, the one clock all
 * consumers share.
 */
export const HEARTBEAT = lua(`
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])`);

/**
 * KEYS: dead letters, replay stream. ARGV: dead letter id. Moves the dead letter's event to the replay stream
 * in one step, so two replays of one letter publish it once. Returns 1 if moved, 0 if there was no such letter.
 */
export const REPLAY_DEAD_LETTER = lua(`
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields = found[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'event' then
    redis.call('XADD', KEYS[2], '*', 'event', fields[i + 1])
    redis.call('XDEL', KEYS[1], ARGV[1])
    return 1
  end
end
return 0`);
