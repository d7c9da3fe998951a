import { AppError } from '../errors/app-error.ts';
import type { Shard } from './shard-set.ts';

export type Consistency = 'strict' | 'partial';

export interface ScatterOutcome<T> {
  /** Answers of the shards that made it, in shard order. */
  answers: Array<{ shard: Shard; value: T }>;
  /** Shards that failed or were late (only with consistency `partial`; `strict` throws instead). */
  missing: Array<{ shard: Shard; reason: string }>;
}

/**
 * Asks every shard at once under one deadline: the signal aborts when it passes (the query should be cancelled
 * on the server, see abortable()), and a shard that has not answered by then counts as late even if its `ask`
 * ignores the signal. One timer and one signal for the whole fan-out, since every shard starts at the same
 * moment. With `strict`, any failed or late shard fails the whole call with SHARD.UNAVAILABLE naming it; with
 * `partial`, the others' answers come back with the missing shards listed.
 * @example const { answers, missing } = await scatter(shards.all(), 2000, 'partial', (shard, signal) => abortable(shard.sql`...`, signal));
 */
export async function scatter<T>(
  shards: readonly Shard[],
  deadlineMs: number,
  consistency: Consistency,
  ask: (shard: Shard, signal: AbortSignal) => Promise<T>,
): Promise<ScatterOutcome<T>> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`no answer within ${deadlineMs} ms`);
      controller.abort(error);
      reject(error);
    }, deadlineMs);
  });
  late.catch(() => {}); // only raced below; nobody may be left waiting on it when every shard answered
  let settled: Array<{ shard: Shard; ok: true; value: T } | { shard: Shard; ok: false; reason: string }>;
  try {
    settled = await Promise.all(
      shards.map(async (shard) => {
        try {
          return { shard, ok: true as const, value: await Promise.race([ask(shard, controller.signal), late]) };
        } catch (error) {
          return { shard, ok: false as const, reason: describe(error) };
        }
      }),
    );
  } finally {
    clearTimeout(timer);
  }
  const answers: Array<{ shard: Shard; value: T }> = [];
  const missing: Array<{ shard: Shard; reason: string }> = [];
  for (const s of settled) {
    if (s.ok) answers.push({ shard: s.shard, value: s.value });
    else missing.push({ shard: s.shard, reason: s.reason });
  }
  if (missing.length > 0 && consistency === 'strict') {
    const names = missing.map((m) => `shard ${m.shard.id} (${m.reason})`).join(', ');
    throw new AppError(
      'SHARD.UNAVAILABLE',
      `no complete answer: ${names}; ask with consistency=partial for the other shards' data`,
      {
        details: { shards: missing.map((m) => m.shard.id) },
      },
    );
  }
  return { answers, missing };
}

function describe(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return e?.code && e.message && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e?.message || String(error);
}

/**
 * Merges lists that are each sorted by `key` descending into the first `limit` items of their union, in the
 * same order (a k-way merge; the lists are short, so a linear pick of the head beats a heap). Equal keys are
 * kept once: for the instant a moving bucket is owned by both its shards, its rows come from both.
 */
export function mergeDescending<T>(lists: ReadonlyArray<readonly T[]>, key: (item: T) => number, limit: number): T[] {
  const heads = lists.map(() => 0);
  const merged: T[] = [];
  while (merged.length < limit) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      if (heads[i]! < lists[i]!.length && (best < 0 || key(lists[i]![heads[i]!]!) > key(lists[best]![heads[best]!]!)))
        best = i;
    }
    if (best < 0) break;
    const item = lists[best]![heads[best]!++]!;
    if (merged.length > 0 && key(merged.at(-1)!) === key(item)) continue;
    merged.push(item);
  }
  return merged;
}
