import { performance } from 'node:perf_hooks';
import type { CreationInput, UsersClient } from './http-client.ts';

export interface LoadResult {
  /** Creations answered 201. */
  created: number;
  /** From the first request sent to the last answer in. */
  seconds: number;
  /** Time of each creation under the load (queueing on the creation lock included). */
  latenciesMs: number[];
  /** Answers other than 201 and transport errors, by message (first 200 characters). */
  failures: Map<string, number>;
}

/**
 * A closed-model load: `concurrency` creations in flight over keep-alive connections, each worker sending its
 * next as soon as its last is answered, until `seconds` have passed; the requests then in flight are waited for
 * and counted. Creations per second = created / seconds.
 */
export async function runCreationLoad(
  client: UsersClient,
  options: { concurrency: number; seconds: number; next: () => CreationInput },
): Promise<LoadResult> {
  const result: LoadResult = { created: 0, seconds: 0, latenciesMs: [], failures: new Map() };
  const started = performance.now();
  const stopAt = started + options.seconds * 1000;
  const worker = async () => {
    while (performance.now() < stopAt) {
      try {
        const { ms } = await client.create(options.next());
        result.created++;
        result.latenciesMs.push(ms);
      } catch (error) {
        const message = String((error as Error).message ?? error).slice(0, 200);
        result.failures.set(message, (result.failures.get(message) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
