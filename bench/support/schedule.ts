/**
 * Interleaves methods with different sample counts: as many rounds as the largest count, a method with `k`
 * samples runs in `k` rounds spread evenly over them, and the order inside a round rotates, so no method
 * always runs first, last, or right after the same neighbour.
 * @example interleave([{ samples: 4 }, { samples: 2 }]) // rounds: [a], [a, b], [a], [b, a]  (a = first, b = second)
 */
export function interleave<M extends { samples: number }>(methods: readonly M[]): M[][] {
  const rounds = Math.max(0, ...methods.map((m) => m.samples));
  const schedule: M[][] = Array.from({ length: rounds }, () => []);
  for (const method of methods) {
    for (let j = 0; j < method.samples; j++) schedule[Math.floor(((j + 0.5) * rounds) / method.samples)]!.push(method);
  }
  const seen = new Map<number, number>();
  return schedule.map((round) => {
    const shift = seen.get(round.length) ?? 0;
    seen.set(round.length, shift + 1);
    const at = round.length === 0 ? 0 : shift % round.length;
    return [...round.slice(at), ...round.slice(0, at)];
  });
}
