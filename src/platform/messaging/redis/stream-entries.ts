import { RESP_TYPES } from 'redis';
import type { RawEntryFields } from './entry-codec.ts';
import type { RedisStreamsClient } from './redis-client.ts';

/** One entry read from a stream; `fields` is null for an entry deleted while it was pending. */
export interface StreamEntry {
  stream: string;
  id: string;
  fields: RawEntryFields | null;
}

type RawFields = Buffer[] | null;
type RawEntry = [id: Buffer, fields: RawFields] | null;
type RawStreams = Array<[name: Buffer, entries: RawEntry[]]> | null;
type RawAutoClaim = [next: Buffer, entries: RawEntry[], deleted?: Buffer[]];

/**
 * Every read of event entries is sent raw with bulk strings as Buffers: node-redis decodes them as UTF-8
 * text by default, which would mangle binary bodies (msgpack, protobuf). Field names and ids are ASCII.
 */
const AS_BYTES = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };

function toFields(raw: RawFields): RawEntryFields | null {
  if (raw === null) return null;
  const fields: RawEntryFields = {};
  for (let i = 0; i + 1 < raw.length; i += 2) fields[String(raw[i])] = raw[i + 1]!;
  return fields;
}

function toEntries(stream: string, raw: readonly RawEntry[]): StreamEntry[] {
  // A nil in place of an entry: an entry deleted while pending, as some server versions answer XAUTOCLAIM.
  return raw.flatMap((e) => (e === null ? [] : [{ stream, id: String(e[0]), fields: toFields(e[1]) }]));
}

function inOrder(streams: readonly string[], reply: RawStreams): StreamEntry[] {
  const byStream = new Map((reply ?? []).map(([name, entries]) => [String(name), entries]));
  // The reply lists streams in no promised order; ours is the order given.
  return streams.flatMap((stream) => toEntries(stream, byStream.get(stream) ?? []));
}

/**
 * XREADGROUP on `streams` (each from `from`: '>' for new entries, '0' for this consumer's pending ones), in
 * stream order then entry order. Sent raw because node-redis's reply transform cannot take the nil fields of
 * a pending entry that was deleted (and to read values as bytes).
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
  return inOrder(streams, await client.sendCommand<RawStreams>(args, AS_BYTES));
}

/**
 * XAUTOCLAIM of up to `count` entries of `stream` pending longer than `minIdleMs` in `group`, from the start,
 * for `consumer`; in entry order. Entries deleted while pending are left out (Redis drops them from the PEL).
 * @example await autoClaim(connection, events, 'billing', 'consumer-1', 10_000, 100)
 */
export async function autoClaim(
  client: RedisStreamsClient,
  stream: string,
  group: string,
  consumer: string,
  minIdleMs: number,
  count: number,
): Promise<StreamEntry[]> {
  const [, entries] = await client.sendCommand<RawAutoClaim>(
    ['XAUTOCLAIM', stream, group, consumer, String(minIdleMs), '0-0', 'COUNT', String(count)],
    AS_BYTES,
  );
  return toEntries(stream, entries);
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
  const reply = await client.sendCommand<RawStreams>(
    ['XREAD', 'COUNT', String(options.count), 'BLOCK', String(options.blockMs), 'STREAMS', ...streams, ...after],
    AS_BYTES,
  );
  return inOrder(streams, reply);
}
