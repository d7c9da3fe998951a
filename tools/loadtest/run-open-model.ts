import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpTarget } from './http-target.ts';
import type { Random } from './random.ts';
import type { Scenario } from './scenarios.ts';
import { arrivalCount, arrivalTime, type LoadProfile } from './schedule.ts';
import { CLIENT_OVERLOADED, createTally, recordNotStarted, recordOutcome, recordStarted, type Tally } from './tally.ts';

export interface OpenModelOptions {
  profile: LoadProfile;
  /** Requests allowed in flight at once; an arrival beyond it fails as CLIENT.OVERLOADED. */
  maxInFlight: number;
  /** Called about every `progressEveryMs` while the load runs. */
  onProgress?: (progress: { elapsedS: number; due: number; inFlight: number; failed: number }) => void;
  progressEveryMs?: number;
}

function failedSoFar(tally: Tally): number {
  return Object.values(tally.kinds).reduce((sum, kind) => sum + kind.failed, 0);
}

/**
 * Drives an open-model load: each request starts when the schedule says, whether or not earlier ones
 * have finished, as Gatling's arrival rates do; a closed loop would slow down with the server and hide
 * its latency. Requests still in flight at the end are awaited; each one's own timeout bounds the wait
 * and counts it as CLIENT.TIMEOUT.
 */
export async function runOpenModel(
  scenario: Scenario,
  target: HttpTarget,
  random: Random,
  options: OpenModelOptions,
): Promise<Tally> {
  const tally = createTally(scenario.kinds);
  const inFlight = new Set<Promise<void>>();
  const count = arrivalCount(options.profile);
  const progressEveryMs = options.progressEveryMs ?? 5_000;
  const start = performance.now();
  let nextProgress = progressEveryMs;
  let index = 0;
  while (index < count) {
    const now = performance.now() - start;
    for (; index < count; index += 1) {
      const dueMs = arrivalTime(options.profile, index) * 1_000;
      if (dueMs > now) break;
      // The plan is drawn for every arrival, started or not, so a seed gives the same sequence of plans.
      const plan = scenario.nextRequest(random);
      if (inFlight.size >= options.maxInFlight) {
        recordNotStarted(tally, plan.kind, CLIENT_OVERLOADED);
        plan.onSettled?.(null);
        continue;
      }
      recordStarted(tally, plan.kind);
      const request: Promise<void> = target
        .send(plan, start + dueMs)
        .then((outcome) => {
          recordOutcome(tally, plan.kind, outcome);
          plan.onSettled?.(outcome);
        })
        .finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
    if (options.onProgress && now >= nextProgress) {
      nextProgress = (Math.floor(now / progressEveryMs) + 1) * progressEveryMs;
      options.onProgress({
        elapsedS: Math.round(now / 100) / 10,
        due: index,
        inFlight: inFlight.size,
        failed: failedSoFar(tally),
      });
    }
    if (index < count)
      await sleep(Math.max(0, arrivalTime(options.profile, index) * 1_000 - (performance.now() - start)));
  }
  await Promise.all(inFlight);
  return tally;
}
