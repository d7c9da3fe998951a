import type { HttpTarget } from './http-target.ts';
import {
  fetchForReadBack,
  forEachConcurrently,
  summarizeVerdicts,
  type ReadBackOptions,
  type ReadBackResult,
  type ReadBackVerdict,
} from './read-back.ts';

/**
 * Reads every created account back after the load: a 404 is a lost write; an account that still cannot be
 * read after retries is unverified.
 */
export async function readBackAccounts(
  target: HttpTarget,
  ids: readonly string[],
  options: ReadBackOptions = {},
): Promise<ReadBackResult> {
  const verdicts: { id: string; verdict: ReadBackVerdict }[] = [];
  await forEachConcurrently(ids, options.concurrency ?? 32, async (id) => {
    const fetched = await fetchForReadBack(target, `/accounts/${id}`, options);
    const verdict: ReadBackVerdict =
      fetched.kind === 'found'
        ? { kind: 'verified' }
        : fetched.kind === 'missing'
          ? { kind: 'lost' }
          : { kind: 'unverified', code: fetched.code };
    verdicts.push({ id, verdict });
  });
  return summarizeVerdicts('accounts', verdicts, { state: false, duplicates: false });
}
