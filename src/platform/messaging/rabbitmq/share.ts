/**
 * How many of a group's partitions one member should hold: an even share of the live members, rounded up so
 * every partition has a taker, and never more than the member's own limit.
 * @example shareOf(8, 3) // 3
 */
export function shareOf(partitions: number, members: number, maxPartitions = partitions): number {
  return Math.min(maxPartitions, Math.ceil(partitions / Math.max(1, members)));
}

/**
 * The partitions a member holding more than its share gives up: the highest-numbered ones, so members agree
 * without talking (the one that joined takes them).
 * @example partitionsToRelease([0, 1, 2, 3, 4, 5, 6, 7], 4) // [7, 6, 5, 4]
 */
export function partitionsToRelease(held: readonly number[], share: number): number[] {
  return [...held].sort((a, b) => b - a).slice(0, Math.max(0, held.length - share));
}

/**
 * The partitions a member may try to claim, in order: those it neither holds nor is still leaving (a handler
 * from its previous hold of the partition may still be running; claiming before it ends would run two events of
 * one partition at once).
 * @example claimCandidates(4, [0], [1]) // [2, 3]
 */
export function claimCandidates(partitions: number, held: Iterable<number>, leaving: Iterable<number>): number[] {
  const skip = new Set([...held, ...leaving]);
  return Array.from({ length: partitions }, (_, p) => p).filter((p) => !skip.has(p));
}
