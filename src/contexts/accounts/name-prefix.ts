/**
 * The smallest string greater than every string that starts with `prefix`, in code-point (byte, "C") order,
 * or null when there is none. `[prefix, upper)` then matches the prefix literally: `_` and `%` are plain
 * characters, unlike in LIKE.
 */
export function prefixUpperBound(prefix: string): string | null {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    const last = points.pop()!;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return String.fromCodePoint(...points, next);
    }
  }
  return null;
}
