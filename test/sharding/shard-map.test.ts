import { describe, expect, it } from 'vitest';
import { assignBuckets, BUCKET_COUNT, bucketOfId, bucketOfKey, jumpHash } from '../../src/platform/sharding/buckets.ts';
import { mergeDescending } from '../../src/platform/sharding/scatter.ts';

const KEYS = Array.from({ length: 100_000 }, (_, i) => i + 1);

function shardOfKeys(shards: number): number[] {
  const map = assignBuckets(shards);
  return KEYS.map((k) => map[bucketOfKey(k)]!);
}

describe('the bucket map', () => {
  it.each([1, 2, 3, 4, 7, 15])(
    'adding a shard to %i moves at most about 1/(n+1) of 100,000 customers, all to the new shard',
    (n) => {
      const before = shardOfKeys(n);
      const after = shardOfKeys(n + 1);
      const moved = KEYS.filter((_, i) => before[i] !== after[i]);
      const share = moved.length / KEYS.length;
      // Buckets are the unit of movement: 1024 of them give a share close to 1/(n+1), within a few percent.
      expect(share).toBeLessThanOrEqual((1 / (n + 1)) * 1.1);
      expect(share).toBeGreaterThan((1 / (n + 1)) * 0.9);
      expect(KEYS.every((_, i) => before[i] === after[i] || after[i] === n)).toBe(true);
    },
  );

  it('spreads customers evenly: each of 4 shards holds 25% ± 3% of 100,000', () => {
    const counts = [0, 0, 0, 0];
    for (const s of shardOfKeys(4)) counts[s]!++;
    for (const c of counts) expect(Math.abs(c / KEYS.length - 0.25)).toBeLessThan(0.03);
  });

  it('puts sequential customer ids into every bucket', () => {
    const buckets = new Set(KEYS.slice(0, 20_000).map(bucketOfKey));
    expect(buckets.size).toBe(BUCKET_COUNT);
  });

  it('jumpHash is stable and in range', () => {
    expect(jumpHash(0, 1)).toBe(0);
    for (let k = 0; k < 1000; k++) {
      const s = jumpHash(k, 10);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(10);
      expect(jumpHash(k, 10)).toBe(s);
    }
    expect(() => bucketOfKey(1.5)).toThrow(RangeError);
  });

  it('reads the bucket off an order id', () => {
    const id = (7 * 64 + 3) * 1024 + 517;
    expect(bucketOfId(id)).toBe(517);
  });
});

describe('mergeDescending', () => {
  it('merges sorted pages into one page in the same order and drops nothing', () => {
    const a = [90, 70, 50, 10];
    const b = [95, 60, 55];
    const c: number[] = [];
    const d = [80, 40];
    expect(mergeDescending([a, b, c, d], (x) => x, 5)).toEqual([95, 90, 80, 70, 60]);
    expect(mergeDescending([a, b, c, d], (x) => x, 100)).toEqual([95, 90, 80, 70, 60, 55, 50, 40, 10]);
  });
});

describe('mergeDescending across a bucket being moved', () => {
  it('keeps a row present on two shards once', () => {
    expect(
      mergeDescending(
        [
          [9, 7, 5],
          [8, 7, 3],
        ],
        (x) => x,
        10,
      ),
    ).toEqual([9, 8, 7, 5, 3]);
  });
});
