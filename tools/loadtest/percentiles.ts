/** Latency summary of one request kind, in milliseconds; null when nothing was measured. */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

/**
 * The nearest-rank percentile of ascending `sorted` samples: the smallest sample with at least `p`% of
 * the samples at or below it. A load run records a few hundred thousand samples at most, so keeping them
 * all is exact and cheap; no histogram needed.
 * @example percentile([1, 2, 3, 4], 50) // 2
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? null;
}

/** p50, p90, p99 and max of unsorted samples, rounded to 0.1 ms. */
export function summarizeLatencies(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const list = Array.from(sorted);
  const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
  return {
    count: list.length,
    p50: round(percentile(list, 50)),
    p90: round(percentile(list, 90)),
    p99: round(percentile(list, 99)),
    max: round(list.at(-1) ?? null),
  };
}
