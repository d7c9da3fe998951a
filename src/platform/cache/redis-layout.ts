import { createHash } from 'node:crypto';

/**
 * Where one cached key lives in Redis. Both names share the `{key}` hash tag, so the scripts below, which
 * touch both, stay on one slot of a Redis Cluster.
 * @example cacheKeys('stratum:notes', 'note:1') // { value: 'stratum:notes:{note:1}:value', version: '…:version' }
 */
export function cacheKeys(namespace: string, key: string): { value: string; version: string } {
  return { value: `${namespace}:{${key}}:value`, version: `${namespace}:{${key}}:version` };
}

/**
 * The pub/sub channel on which every instance of a namespace hears invalidations.
 * @example invalidationChannel('stratum:notes') // 'stratum:notes:invalidate'
 */
export function invalidationChannel(namespace: string): string {
  return `${namespace}:invalidate`;
}

export interface RedisScript {
  readonly source: string;
  readonly sha1: string;
}

function defineScript(source: string): RedisScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

/**
 * KEYS: value, version. ARGV: the version read before loading, the encoded value, ttl ms. Returns 1 if stored.
 * A missing version counts as '0', so a key never invalidated can be written by a load that read nothing.
 */
export const WRITE_IF_UNCHANGED = defineScript(`
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`);

/**
 * KEYS: value, version. ARGV: channel, key, version ttl ms. One atomic step, so an instance that hears the
 * message can only read the key's new state.
 */
export const INVALIDATE = defineScript(`
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`);

/** The two script commands of a node-redis client. */
export interface ScriptClient {
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/**
 * Runs a script by its hash (EVALSHA) and sends its source only when the server does not know it yet.
 * @example await runScript(client, INVALIDATE, [keys.value, keys.version], [channel, key, '3600000']);
 */
export async function runScript(
  client: ScriptClient,
  script: RedisScript,
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
