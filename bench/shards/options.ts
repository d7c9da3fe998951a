import { UsageError } from '../users/options.ts';

export interface ShardsBenchOptions {
  /** Orders generated on each of the 4 shards of the read data set (kept between runs, one data set per size). */
  ordersPerShard: number;
  /** Timed rounds per read; a round times stratum, every shard alone, and all shards at once directly. */
  rounds: number;
  /** Concurrent connections of the create-order load. */
  connections: number;
  /** Seconds of each timed create-order run. */
  writeSeconds: number;
  /** Timed create-order runs per shard count, interleaved; the report gives the median. */
  writeRounds: number;
  /** Builds the read data set again even when a complete one of this size exists. */
  regenerate: boolean;
  /** Times the reads only (no create-order part): for iterating on the read path. */
  readsOnly: boolean;
}

/** Where the benchmark's embedded PostgreSQL lives (git-ignored, like every `.stratum-*`). */
export const BENCH_SHARDS_HOME = '.stratum-bench-shards';

export const SHARDS_BENCH_USAGE =
  'usage: npm run bench -- shards [--orders-per-shard 250000] [--rounds 200] ' +
  '[--connections 32] [--write-seconds 15] [--write-rounds 3] [--regenerate] [--reads-only]';

const DEFAULTS: ShardsBenchOptions = {
  ordersPerShard: 250_000,
  rounds: 200,
  connections: 32,
  writeSeconds: 15,
  writeRounds: 3,
  regenerate: false,
  readsOnly: false,
};

/** Reads the flags above (also `--name=value`); throws UsageError with the usage line otherwise. */
export function parseShardsOptions(argv: readonly string[]): ShardsBenchOptions {
  const options = { ...DEFAULTS };
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === '--regenerate' || flag === '--reads-only') {
      if (flag === '--regenerate') options.regenerate = true;
      else options.readsOnly = true;
      continue;
    }
    const value = args[++i];
    if (flag === '--orders-per-shard' && value) options.ordersPerShard = wholeNumber(value, flag, 1000, 5_000_000);
    else if (flag === '--rounds' && value) options.rounds = wholeNumber(value, flag, 1, 100_000);
    else if (flag === '--connections' && value) options.connections = wholeNumber(value, flag, 1, 1000);
    else if (flag === '--write-seconds' && value) options.writeSeconds = wholeNumber(value, flag, 1, 3600);
    else if (flag === '--write-rounds' && value) options.writeRounds = wholeNumber(value, flag, 1, 100);
    else throw new UsageError(`unknown or incomplete argument "${flag}"\n${SHARDS_BENCH_USAGE}`);
  }
  return options;
}

function wholeNumber(raw: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`${flag} takes whole numbers from ${min} to ${max}, got "${raw}"\n${SHARDS_BENCH_USAGE}`);
  }
  return Number(raw);
}
