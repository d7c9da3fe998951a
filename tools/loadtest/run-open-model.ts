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
  /** Where to count, so the caller can watch the run live (a progress line); a new one by default. */
  tally?: Tally;
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
  const tally = options.tally ?? createTally(scenario.kinds);
  const inFlight = new Set<Promise<void>>();
  const count = arrivalCount(options.profile);
  const start = performance.now();
  tally.timeline.begin(start);
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
          recordOutcome(tally, plan.kind, outcome, plan.expectStatus);
          plan.onSettled?.(outcome);
        })
        .finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
    if (index < count)
      await sleep(Math.max(0, arrivalTime(options.profile, index) * 1_000 - (performance.now() - start)));
  }
  await Promise.all(inFlight);
  return tally;
}
