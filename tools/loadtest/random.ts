/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * A seeded generator (mulberry32): the same seed gives the same run, which `Math.random` cannot.
 * @example const random = createRandom(1); random() // 0.6270739405881613, every time
 */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A uniform integer in [0, bound). */
export function randomInt(random: Random, bound: number): number {
  return Math.floor(random() * bound);
}
