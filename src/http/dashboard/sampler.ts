import type { Metrics, ObservedRequest } from '../../platform/observability/metrics.ts';

/** How often a sample is taken, and how many are kept: 15 minutes of seconds. */
export const SAMPLE_MS = 1000;
export const SAMPLES_KEPT = 900;

/** One route's second: answers, and their exact p50 / p99 in milliseconds. */
export type RouteSecond = [count: number, p50: number, p99: number];

/** One pool at the end of the second: callers holding a connection, free slots, waiting callers, refusals in the second. */
export type PoolSecond = [inUse: number, free: number, waiting: number, refused: number, max: number];

export interface CacheSecond {
  hitLocal: number;
  hitShared: number;
  miss: number;
  loads: number;
  invalidations: number;
}

/** Everything the dashboard charts of one second. */
export interface Sample {
  /** The end of the second (epoch ms). */
  t: number;
  /** By `METHOD /route`, and `*` for every route together. */
  routes: Record<string, RouteSecond>;
  /** Error answers by problem code (`HTTP_<status>` for one without). */
  errors: Record<string, number>;
  pools: Record<string, PoolSecond>;
  tx: { commits: number; deadlines: number; retries: Record<string, number> };
  cache: Record<string, CacheSecond>;
  /** Events published by each outbox's relay. */
  relayed: Record<string, number>;
}

export interface Sampler {
  /** Samples taken after `t` (epoch ms), oldest first. */
  since(t: number): Sample[];
  stop(): void;
}

/** The value at quantile q of sorted values (nearest rank). */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * Listens to the process's metrics events and turns each second into a Sample, keeping the last 15 minutes in
 * memory. Requests to the dashboard itself are left out (watching must not show as load). Cheap when nobody
 * watches: counting in maps, one sort per route per second.
 * @example const sampler = startSampler(metrics); app.get('/x', () => sampler.since(0));
 */
export function startSampler(
  metrics: Metrics,
  options: { now?: () => number; skipRoute?: (route: string) => boolean } = {},
): Sampler {
  const now = options.now ?? Date.now;
  const skip = options.skipRoute ?? (() => false);
  const kept: Sample[] = [];
  let durations = new Map<string, number[]>();
  let errors: Record<string, number> = {};
  let tx = { commits: 0, deadlines: 0, retries: {} as Record<string, number> };
  let cache: Record<string, CacheSecond> = {};
  let relayed: Record<string, number> = {};
  const refusedBefore = new Map<string, number>();

  const cacheOf = (name: string) =>
    (cache[name] ??= { hitLocal: 0, hitShared: 0, miss: 0, loads: 0, invalidations: 0 });
  const stopListening = metrics.listen({
    request(r: ObservedRequest) {
      if (skip(r.route)) return;
      const key = `${r.method} ${r.route}`;
      let list = durations.get(key);
      if (!list) durations.set(key, (list = []));
      list.push(r.ms);
      if (r.status >= 400) {
        const code = r.code ?? `HTTP_${r.status}`;
        errors[code] = (errors[code] ?? 0) + 1;
      }
    },
    commit: () => void tx.commits++,
    deadline: () => void tx.deadlines++,
    retry: (_label, reason) => void (tx.retries[reason] = (tx.retries[reason] ?? 0) + 1),
    cache(name, what) {
      const c = cacheOf(name);
      if (what === 'hit_local') c.hitLocal++;
      else if (what === 'hit_shared') c.hitShared++;
      else if (what === 'miss') c.miss++;
      else if (what === 'load') c.loads++;
      else c.invalidations++;
    },
    relayed: (outbox, count) => void (relayed[outbox] = (relayed[outbox] ?? 0) + count),
  });

  const take = () => {
    const routes: Record<string, RouteSecond> = {};
    const all: number[] = [];
    for (const [key, list] of durations) {
      list.sort((a, b) => a - b);
      routes[key] = [list.length, round(quantile(list, 0.5)), round(quantile(list, 0.99))];
      all.push(...list);
    }
    all.sort((a, b) => a - b);
    routes['*'] = [all.length, round(quantile(all, 0.5)), round(quantile(all, 0.99))];
    const pools: Record<string, PoolSecond> = {};
    for (const s of metrics.poolStates()) {
      const before = refusedBefore.get(s.name) ?? s.refused;
      refusedBefore.set(s.name, s.refused);
      const prior = pools[s.name];
      // Two pools of one name (a context's pool on each server): shown together.
      pools[s.name] = prior
        ? [
            prior[0] + s.inUse,
            prior[1] + s.max - s.inUse,
            prior[2] + s.waiting,
            prior[3] + s.refused - before,
            prior[4] + s.max,
          ]
        : [s.inUse, Math.max(0, s.max - s.inUse), s.waiting, s.refused - before, s.max];
    }
    kept.push({ t: now(), routes, errors, pools, tx, cache, relayed });
    if (kept.length > SAMPLES_KEPT) kept.splice(0, kept.length - SAMPLES_KEPT);
    durations = new Map();
    errors = {};
    tx = { commits: 0, deadlines: 0, retries: {} };
    cache = {};
    relayed = {};
  };
  const timer = setInterval(take, SAMPLE_MS);
  timer.unref();

  return {
    since(t) {
      let i = kept.length;
      while (i > 0 && kept[i - 1]!.t > t) i--;
      return kept.slice(i);
    },
    stop() {
      clearInterval(timer);
      stopListening();
    },
  };
}
