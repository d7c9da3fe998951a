/**
 * The open-model arrival schedule: the rate climbs linearly from 0 to `rate` over `ramp` seconds, then
 * holds until `duration`. Arrivals follow the integral of the rate, so the count over a run is exact and
 * does not depend on how quickly the server answers.
 */
export interface LoadProfile {
  /** Arrivals per second once the ramp is over. */
  rate: number;
  /** Seconds to climb from 0 to `rate`; 0 starts at full rate. */
  ramp: number;
  /** Seconds of the whole run, ramp included. */
  duration: number;
  /**
   * Arrivals released together (default 1): each group starts at the time of its first arrival, so `burst`
   * requests hit the service at once while the average rate stays `rate`.
   */
  burst?: number;
}

// Float error in the inverse could otherwise add or drop the last arrival.
const EPSILON = 1e-9;

/** Arrivals expected in the first `t` seconds: the area under the rate curve. */
export function arrivalsBy(profile: LoadProfile, t: number): number {
  const { rate, ramp } = profile;
  const until = Math.min(Math.max(t, 0), profile.duration);
  if (ramp > 0 && until <= ramp) return (rate * until * until) / (2 * ramp);
  return (rate * ramp) / 2 + rate * (until - ramp);
}

/**
 * How many requests the run starts: arrivals happen at cumulative counts 0, 1, 2, … strictly before
 * `duration`.
 * @example arrivalCount({ rate: 50, ramp: 5, duration: 75 }) // 3625 = 125 during the ramp + 3500
 */
export function arrivalCount(profile: LoadProfile): number {
  return Math.max(0, Math.ceil(arrivalsBy(profile, profile.duration) - EPSILON));
}

/**
 * Seconds after the start at which the `index`-th request (from 0) is due: the inverse of `arrivalsBy`.
 * @example arrivalTime({ rate: 10, ramp: 0, duration: 2 }, 5) // 0.5
 * @example arrivalTime({ rate: 10, ramp: 0, duration: 2, burst: 4 }, 5) // 0.4, with arrivals 4 to 7
 */
export function arrivalTime(profile: LoadProfile, index: number): number {
  const burst = Math.max(1, Math.floor(profile.burst ?? 1));
  return smoothArrivalTime(profile, index - (index % burst));
}

function smoothArrivalTime(profile: LoadProfile, index: number): number {
  const { rate, ramp } = profile;
  const rampArrivals = (rate * ramp) / 2;
  if (index <= rampArrivals && ramp > 0) return Math.sqrt((2 * ramp * index) / rate);
  return ramp + (index - rampArrivals) / rate;
}

/** Every arrival time of the run, in seconds, in order. */
export function* arrivalTimes(profile: LoadProfile): Generator<number> {
  const count = arrivalCount(profile);
  for (let i = 0; i < count; i += 1) yield arrivalTime(profile, i);
}
