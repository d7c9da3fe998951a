import { performance } from 'node:perf_hooks';
import { percentile, summarizeLatencies, type LatencySummary } from './percentiles.ts';

/** One second of a run, as the HTML report charts it. Arrays are indexed by second from the start. */
export interface PerSecondSeries {
  /** The start of each one-second bucket, in seconds from the start of the load: 0, 1, 2, … */
  t: number[];
  /** Requests started in that second. */
  sent: number[];
  /** HTTP answers (any status) that came in that second. */
  answered: number[];
  /** Requests that failed in that second: a status other than the expected one, no answer, or never started. */
  errors: number[];
  /** Latency percentiles (ms, from the scheduled start) of the answers that came in that second; null without any. */
  p50: (number | null)[];
  p90: (number | null)[];
  p99: (number | null)[];
  /** Per HTTP status ('200', '503') or client code when no answer came ('CLIENT.TIMEOUT'): how many in that second. */
  statuses: Record<string, number[]>;
  /** The p99 of each request kind, per second. */
  kindsP99: Record<string, (number | null)[]>;
  /** Other counts per second a run adds, e.g. effects applied by a consumer. */
  counters: Record<string, number[]>;
}

interface Bucket {
  sent: number;
  answered: number;
  errors: number;
  statuses: Map<string, number>;
  /** Latencies of the answers of the second, by kind. */
  latencies: Map<string, number[]>;
  counters: Map<string, number>;
}

/**
 * Per-second buckets of a run, filled as requests start and settle: what the live progress line reads, and what
 * the HTML report charts. Keeps every latency once more (per second), as the tally does per kind.
 */
export interface Timeline {
  /** Sets the start of the load, a `performance.now()` value; buckets count from it. */
  begin(origin: number): void;
  /** Milliseconds since the start. */
  elapsedMs(): number;
  started(kind: string): void;
  /** Settled without being sent (too many in flight): an error under `code`. */
  notStarted(kind: string, code: string): void;
  /**
   * Settled: `key` is the HTTP status, or the client's code when no answer came; `latencyMs` is null without an
   * answer; `ok` when it was the answer expected.
   */
  settled(kind: string, key: string, ok: boolean, latencyMs: number | null): void;
  /** Adds `n` to the counter `name` in the current second. */
  count(name: string, n: number): void;
  inFlight(): number;
  /** The p99 of the answers of the last `seconds` seconds (the current one included), or null without any. */
  recentP99(seconds: number): number | null;
  series(): PerSecondSeries;
  /** Over the whole run: per kind, how many answers of each status (or client code). */
  statusesByKind(): Record<string, Record<string, number>>;
  /** Over the whole run: the latencies of one kind's answers. */
  latencySummary(kind: string): LatencySummary;
}

const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);

function emptyBucket(): Bucket {
  return { sent: 0, answered: 0, errors: 0, statuses: new Map(), latencies: new Map(), counters: new Map() };
}

const add = (map: Map<string, number>, key: string, n = 1) => map.set(key, (map.get(key) ?? 0) + n);

/** @example const timeline = createTimeline(['read']); timeline.begin(performance.now()); */
export function createTimeline(kinds: readonly string[], clock: () => number = () => performance.now()): Timeline {
  let origin = clock();
  const buckets: Bucket[] = [];
  const byKind = new Map<string, Map<string, number>>(kinds.map((k) => [k, new Map()]));
  let started = 0;
  let settled = 0;

  const now = () => clock() - origin;
  const bucket = (): Bucket => {
    const index = Math.max(0, Math.floor(now() / 1_000));
    while (buckets.length <= index) buckets.push(emptyBucket());
    return buckets[index]!;
  };
  const statusOf = (kind: string) => {
    const found = byKind.get(kind);
    if (found) return found;
    const created = new Map<string, number>();
    byKind.set(kind, created);
    return created;
  };

  return {
    begin(at) {
      origin = at;
    },
    elapsedMs: now,
    started() {
      started += 1;
      bucket().sent += 1;
    },
    notStarted(kind, code) {
      const b = bucket();
      b.errors += 1;
      add(b.statuses, code);
      add(statusOf(kind), code);
    },
    settled(kind, key, ok, latencyMs) {
      settled += 1;
      const b = bucket();
      add(b.statuses, key);
      add(statusOf(kind), key);
      if (!ok) b.errors += 1;
      if (latencyMs === null) return;
      b.answered += 1;
      const list = b.latencies.get(kind);
      if (list) list.push(latencyMs);
      else b.latencies.set(kind, [latencyMs]);
    },
    count(name, n) {
      add(bucket().counters, name, n);
    },
    inFlight: () => started - settled,
    recentP99(seconds) {
      const last = Math.floor(now() / 1_000);
      const samples: number[] = [];
      for (let i = Math.max(0, last - seconds + 1); i <= last && i < buckets.length; i += 1)
        for (const list of buckets[i]!.latencies.values()) for (const l of list) samples.push(l);
      return round(percentile(Array.from(Float64Array.from(samples).sort()), 99));
    },
    series() {
      const n = Math.max(1, buckets.length);
      const filled = Array.from({ length: n }, (_, i) => buckets[i] ?? emptyBucket());
      const statusKeys = [...new Set(filled.flatMap((b) => [...b.statuses.keys()]))].sort(compareStatus);
      const counterKeys = [...new Set(filled.flatMap((b) => [...b.counters.keys()]))];
      const kindNames = [...byKind.keys()].filter((k) => filled.some((b) => b.latencies.has(k)));
      const sorted = filled.map((b) => ({
        all: Array.from(Float64Array.from([...b.latencies.values()].flat()).sort()),
        kinds: new Map([...b.latencies].map(([k, l]) => [k, Array.from(Float64Array.from(l).sort())])),
      }));
      return {
        t: filled.map((_, i) => i),
        sent: filled.map((b) => b.sent),
        answered: filled.map((b) => b.answered),
        errors: filled.map((b) => b.errors),
        p50: sorted.map((s) => round(percentile(s.all, 50))),
        p90: sorted.map((s) => round(percentile(s.all, 90))),
        p99: sorted.map((s) => round(percentile(s.all, 99))),
        statuses: Object.fromEntries(statusKeys.map((k) => [k, filled.map((b) => b.statuses.get(k) ?? 0)])),
        kindsP99: Object.fromEntries(
          kindNames.map((k) => [k, sorted.map((s) => round(percentile(s.kinds.get(k) ?? [], 99)))]),
        ),
        counters: Object.fromEntries(counterKeys.map((k) => [k, filled.map((b) => b.counters.get(k) ?? 0)])),
      };
    },
    latencySummary(kind) {
      return summarizeLatencies(buckets.flatMap((b) => b.latencies.get(kind) ?? []));
    },
    statusesByKind() {
      return Object.fromEntries(
        [...byKind].map(([kind, statuses]) => [
          kind,
          Object.fromEntries([...statuses].sort(([a], [b]) => compareStatus(a, b))),
        ]),
      );
    },
  };
}

/** HTTP statuses in numeric order, then client codes by name. */
function compareStatus(a: string, b: string): number {
  const [na, nb] = [Number(a), Number(b)];
  const [ia, ib] = [Number.isInteger(na), Number.isInteger(nb)];
  if (ia && ib) return na - nb;
  if (ia !== ib) return ia ? -1 : 1;
  return a.localeCompare(b);
}
