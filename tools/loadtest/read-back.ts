import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpTarget } from './http-target.ts';

/** A record found, but not in the state the run last saw acknowledged. */
export interface WrongState {
  id: string;
  expected: string;
  found: string;
  /** Which read said so, e.g. `GET /orders/:id` or `GET /orders?customerId=7`. */
  where: string;
}

/** A record that appears more than once where it must appear once. */
export interface Duplicate {
  id: string;
  count: number;
}

/**
 * What reading back the records a run created found. `wrongState` and `duplicated` are present only when the
 * read-back checks them: absent means "not checked", never "none found".
 */
export interface ReadBackResult {
  /** What was created: accounts, orders. */
  noun: string;
  created: number;
  /** Records found as the run left them. */
  verified: number;
  /** Ids answered with 404 (or missing from a listing): the service said 201 and then lost the record. */
  lost: string[];
  wrongState?: WrongState[];
  duplicated?: Duplicate[];
  /** Ids that could not be checked (errors other than 404, after retries), with the last failure code. */
  unverified: { id: string; code: string }[];
}

export type ReadBackVerdict =
  | { kind: 'verified' }
  | { kind: 'lost' }
  | { kind: 'wrong-state'; expected: string; found: string; where: string }
  | { kind: 'duplicated'; count: number }
  | { kind: 'unverified'; code: string };

export interface ReadBackOptions {
  concurrency?: number;
  attempts?: number;
  retryDelayMs?: number;
}

/** What one read-back GET came to, after its retries. */
export type Fetched = { kind: 'found'; body: unknown } | { kind: 'missing' } | { kind: 'failed'; code: string };

/**
 * GETs `path` for a read-back: 200 is found (with its body, if `accept` takes it), 404 is missing, anything
 * else is retried and then reported as failed with its code, rather than guessed either way.
 */
export async function fetchForReadBack(
  target: HttpTarget,
  path: string,
  options: ReadBackOptions & { accept?: (body: unknown) => boolean } = {},
): Promise<Fetched> {
  const { attempts = 3, retryDelayMs = 200 } = options;
  let code = 'UNKNOWN';
  for (let attempt = 1; attempt <= attempts; attempt += 1) {
    let body: unknown;
    const outcome = await target.send(
      {
        kind: 'read-back',
        method: 'GET',
        path,
        expectStatus: 200,
        accept: (answer) => {
          body = answer;
          return options.accept ? options.accept(answer) : true;
        },
      },
      performance.now(),
    );
    if (outcome.ok) return { kind: 'found', body };
    if (outcome.status === 404) return { kind: 'missing' };
    code = outcome.code;
    if (attempt < attempts) await sleep(retryDelayMs * attempt);
  }
  return { kind: 'failed', code };
}

/** Runs `work` on every item, at most `concurrency` at once. */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next]!;
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Counts verdicts into a result; `checks` says which kinds of fault this read-back looks for. */
export function summarizeVerdicts(
  noun: string,
  verdicts: readonly { id: string; verdict: ReadBackVerdict }[],
  checks: { state: boolean; duplicates: boolean },
): ReadBackResult {
  const result: ReadBackResult = {
    noun,
    created: verdicts.length,
    verified: 0,
    lost: [],
    ...(checks.state ? { wrongState: [] } : {}),
    ...(checks.duplicates ? { duplicated: [] } : {}),
    unverified: [],
  };
  for (const { id, verdict } of verdicts) {
    if (verdict.kind === 'verified') result.verified += 1;
    else if (verdict.kind === 'lost') result.lost.push(id);
    else if (verdict.kind === 'unverified') result.unverified.push({ id, code: verdict.code });
    else if (verdict.kind === 'duplicated') result.duplicated?.push({ id, count: verdict.count });
    else result.wrongState?.push({ id, expected: verdict.expected, found: verdict.found, where: verdict.where });
  }
  return result;
}

/** True when every record was found as the run left it. */
export function isCleanReadBack(result: ReadBackResult): boolean {
  return (
    result.lost.length === 0 &&
    result.unverified.length === 0 &&
    (result.wrongState?.length ?? 0) === 0 &&
    (result.duplicated?.length ?? 0) === 0
  );
}
