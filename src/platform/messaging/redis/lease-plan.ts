export interface LeasePlanInput {
  partitions: number;
  /** Live consumers of the group, this one included. */
  liveConsumers: number;
  /** The most partitions this consumer may serve at once. */
  maxPartitions: number;
  /** Partitions this consumer serves and is not already letting go of. */
  serving: readonly number[];
  /** Partitions it must not try to take: held, being released, or whose last worker here is still finishing. */
  busy: ReadonlySet<number>;
}

export interface LeasePlan {
  /** Partitions to let go of, so that the consumers that joined get theirs. */
  release: number[];
  /** Partitions to try, in order, until `want` of them were taken. */
  candidates: number[];
  want: number;
}

/**
 * One consumer's move towards its fair share of a group's partitions, ceil(partitions / live consumers)
 * capped at maxPartitions: let the extra ones go, or try to take free ones. Taking is first come, first
 * served (an atomic SET NX per lease), so consumers that each stay within their share leave none unserved.
 * @example planLeases({ partitions: 8, liveConsumers: 2, maxPartitions: 8, serving: [0, 1, 2, 3, 4, 5, 6, 7], busy })
 * // { release: [4, 5, 6, 7], candidates: [], want: 0 }
 */
export function planLeases(input: LeasePlanInput): LeasePlan {
  const share = Math.min(input.maxPartitions, Math.ceil(input.partitions / Math.max(1, input.liveConsumers)));
  if (input.serving.length > share) {
    return { release: [...input.serving].sort((a, b) => a - b).slice(share), candidates: [], want: 0 };
  }
  const candidates = Array.from({ length: input.partitions }, (_, p) => p).filter((p) => !input.busy.has(p));
  return { release: [], candidates, want: share - input.serving.length };
}
