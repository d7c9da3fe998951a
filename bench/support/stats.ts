/** Latency summaries for benchmark samples, in milliseconds. */

/** The value at or below which `p` percent of the samples fall (nearest rank: an actual sample, never interpolated). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new RangeError('percentile of no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** The middle sample (the mean of the two middle ones for an even count). */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) throw new RangeError('median of no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Summary {
  samples: number;
  medianMs: number;
  /** Nearest rank: with fewer than 100 samples this is the slowest one. */
  p99Ms: number;
}

export function summarize(samples: readonly number[]): Summary {
  return { samples: samples.length, medianMs: median(samples), p99Ms: percentile(samples, 99) };
}
