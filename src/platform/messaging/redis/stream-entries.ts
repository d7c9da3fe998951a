import type { EntryFields } from './entry-codec.ts';
import type { RedisStreamsClient } from './redis-client.ts';

/** One entry read from a stream; `fields` is null for an entry deleted while it was pending. */
export interface StreamEntry {
  stream: string;
  id: string;
  fields: EntryFields | null;
}

type RawFields = string[] | null;
type RawStreams = Array<[name: string, entries: Array<[id: string, fields: RawFields]>]> | null;

/**
 * XREADGROUP on `streams` (each from `from`: '>' for new entries, '0' for this consumer's pending ones), in
 * stream order then entry order. Sent raw because node-redis's reply transform cannot take the nil fields of
 * a pending entry that was deleted.
 * @example await readGroup(connection, 'billing', 'consumer-1', [events, replay], '>', { count: 100, blockMs: 1000 })
 */
export async function readGroup(
  client: RedisStreamsClient,
  group: string,
  consumer: string,
  streams: readonly string[],
  from: '>' | '0',
  options: { count: number; blockMs?: number },
): Promise<StreamEntry[]> {
  const args = ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(options.count)];
  if (options.blockMs !== undefined) args.push('BLOCK', String(options.blockMs));
  args.push('STREAMS', ...streams, ...streams.map(() => from));
  const reply = await client.sendCommand<RawStreams>(args);
  const byStream = new Map((reply ?? []).map(([name, entries]) => [String(name), entries]));
  // The reply lists streams in no promised order; ours is the order given.
  return streams.flatMap((stream) =>
    (byStream.get(stream) ?? []).map(([id, fields]) => ({ stream, id: String(id), fields: toFields(fields) })),
  );
}

function toFields(raw: RawFields): EntryFields | null {
  if (raw === null) return null;
  const fields: EntryFields = {};
  for (let i = 0; i + 1 < raw.length; i += 2) fields[String(raw[i])] = String(raw[i + 1]);
  return fields;
}

/**
 * XREAD (no group) on `streams`, each after its id in `after`, blocking up to `blockMs`: what a follower reads.
 * @example await readStreams(connection, [events0, events1], ['0-0', '1700000000000-0'], { count: 500, blockMs: 1000 })
 */
export async function readStreams(
  client: RedisStreamsClient,
  streams: readonly string[],
  after: readonly string[],
  options: { count: number; blockMs: number },
): Promise<StreamEntry[]> {
  const reply = await client.sendCommand<RawStreams>([
    'XREAD',
    'COUNT',
    String(options.count),
    'BLOCK',
    String(options.blockMs),
    'STREAMS',
    ...streams,
    ...after,
  ]);
  const byStream = new Map((reply ?? []).map(([name, entries]) => [String(name), entries]));
  return streams.flatMap((stream) =>
    (byStream.get(stream) ?? []).map(([id, fields]) => ({ stream, id: String(id), fields: toFields(fields) })),
  );
}
