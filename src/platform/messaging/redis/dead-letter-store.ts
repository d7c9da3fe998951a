import { partitionOf, type DeadLetter, type DeadLetterStore } from '../broker.ts';
import { deadLetterFromEntry, type EntryFields } from './entry-codec.ts';
import type { RedisStreamsKeys } from './keys.ts';
import type { RedisStreamsClient } from './redis-client.ts';
import { REPLAY_DEAD_LETTER, runScript } from './scripts.ts';

// Anything else makes Redis answer with an error, where the caller asked about a letter that is not there.
const STREAM_ID = /^\d+-\d+$/;

/**
 * A group's dead letters are the entries of its stream `<namespace>:dlq:<group>`; a letter's id is its entry
 * id. A replay moves the event to the group's replay stream of its partition, which only that group's holder
 * of the partition reads, so other groups do not get it twice.
 * @example const letters = createDeadLetterStore(client, redisStreamsKeys('stratum'), 8);
 * for (const letter of await letters.list('billing', 20)) await letters.replay('billing', letter.id);
 */
export function createDeadLetterStore(
  client: RedisStreamsClient,
  keys: RedisStreamsKeys,
  partitions: number,
): DeadLetterStore {
  async function get(group: string, id: string): Promise<DeadLetter | undefined> {
    if (!STREAM_ID.test(id)) return undefined;
    const [entry] = await client.xRange(keys.deadLetters(group), id, id);
    return entry && deadLetterFromEntry(group, String(entry.id), entry.message as EntryFields);
  }

  return {
    async list(group, limit) {
      const entries = await client.xRange(keys.deadLetters(group), '-', '+', { COUNT: limit });
      return entries.map((entry) => deadLetterFromEntry(group, String(entry.id), entry.message as EntryFields));
    },
    get,
    async replay(group, id) {
      const letter = await get(group, id);
      if (!letter) return false;
      const replayStream = keys.replay(group, partitionOf(letter.event.key, partitions));
      return Number(await runScript(client, REPLAY_DEAD_LETTER, [keys.deadLetters(group), replayStream], [id])) === 1;
    },
    async drop(group, id) {
      if (!STREAM_ID.test(id)) return false;
      return (await client.xDel(keys.deadLetters(group), id)) === 1;
    },
  };
}
