/**
 * Two levels between a key and a shard: a key falls into one of BUCKET_COUNT fixed buckets (a hash, never
 * changes), and the versioned shard map assigns buckets to shards (jump consistent hash, changes when shards
 * are added). Moving data means moving whole buckets.
 */
export const BUCKET_COUNT = 1024;
/** Shard ids fit in 6 bits of an id. */
export const MAX_SHARDS = 64;

const MULTIPLIER = 2654435761n;
const TWO_POW_32 = 4294967296n;

/**
 * The bucket of a key: the top 10 bits of a 32-bit multiplicative hash (Knuth). The SQL function
 * A context's SQL that computes buckets (a sharded context's bucket_of function) must compute the same.
 * @example bucketOfKey(42) // => 648
 */
export function bucketOfKey(key: number): number {
  if (!Number.isSafeInteger(key)) throw new RangeError(`a shard key must be a safe integer, got ${key}`);
  const product = (((BigInt(key) * MULTIPLIER) % TWO_POW_32) + TWO_POW_32) % TWO_POW_32;
  return Number(product >> 22n);
}

/**
 * Jump consistent hash (Lamping and Veach, 2014): maps a key to one of `shards` slots such that going from n to
 * n + 1 slots moves only about 1/(n + 1) of the keys, all of them to the new slot. No table, no virtual nodes;
 * slots can only be added at the end (a shard cannot be removed from the middle).
 */
export function jumpHash(key: number, shards: number): number {
  if (shards < 1) throw new RangeError('jumpHash needs at least one shard');
  let k = BigInt.asUintN(64, BigInt(key));
  let b = -1;
  let j = 0;
  while (j < shards) {
    b = j;
    k = BigInt.asUintN(64, k * 2862933555777941757n + 1n);
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/** Every bucket's shard when there are `shards` shards: jumpHash over the bucket numbers. */
export function assignBuckets(shards: number): number[] {
  return Array.from({ length: BUCKET_COUNT }, (_, bucket) => jumpHash(bucket, shards));
}

/**
 * Ids minted by a shard: (sequence * 64 + shard) * 1024 + bucket. Unique across shards, and the bucket, hence
 * the shard, is read off the id itself.
 */
export function bucketOfId(id: number): number {
  return id % BUCKET_COUNT;
}
