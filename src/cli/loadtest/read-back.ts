import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { sendPlannedRequest, type HttpTarget } from './http-target.ts';

export interface ReadBackResult {
  created: number;
  verified: number;
  /** Ids answered with 404: the service said 201 and then lost the account. */
  lost: string[];
  /** Ids that could not be checked (errors other than 404, after retries), with the last failure code. */
  unverified: { id: string; code: string }[];
}

export interface ReadBackOptions {
  concurrency?: number;
  attempts?: number;
  retryDelayMs?: number;
}

type Verdict = { kind: 'verified' } | { kind: 'lost' } | { kind: 'unverified'; code: string };

async function checkAccount(target: HttpTarget, id: string, attempts: number, retryDelayMs: number): Promise<Verdict> {
  let code = 'UNKNOWN';
  for (let attempt = 1; attempt <= attempts; attempt += 1) {
    const outcome = await sendPlannedRequest(target, { kind: 'read-back', method: 'GET', path: `/accounts/${id}`, expectStatus: 200 }, performance.now());
    if (outcome.ok) return { kind: 'verified' };
    if (outcome.status === 404) return { kind: 'lost' };
    code = outcome.code;
    if (attempt < attempts) await sleep(retryDelayMs * attempt);
  }
  return { kind: 'unverified', code };
}

/**
 * Reads every created account back after the load. A 404 is a lost write; a transient error is retried,
 * and an account that still cannot be read is reported as unverified rather than guessed either way.
 */
export async function readBackAccounts(target: HttpTarget, ids: readonly string[], options: ReadBackOptions = {}): Promise<ReadBackResult> {
  const { concurrency = 32, attempts = 3, retryDelayMs = 200 } = options;
  const result: ReadBackResult = { created: ids.length, verified: 0, lost: [], unverified: [] };
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next]!;
      next += 1;
      const verdict = await checkAccount(target, id, attempts, retryDelayMs);
      if (verdict.kind === 'verified') result.verified += 1;
      else if (verdict.kind === 'lost') result.lost.push(id);
      else result.unverified.push({ id, code: verdict.code });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return result;
}
