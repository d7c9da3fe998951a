/** The score modes the mode comparison can run: `sync` is the eager mode (every other row updated per creation). */
export const BENCH_MODES = ['sync', 'deferred'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

export interface UsersBenchOptions {
  /**
   * `modes` (the default): SCORE_MODE=deferred next to the eager mode; `baselines`: the eager mode next to
   * the three baselines (`--baselines`, the comparison this benchmark ran before SCORE_MODE=deferred).
   */
  suite: 'modes' | 'baselines';
  sizes: number[];
  /**
   * Baselines: creations timed per size for stratum and (c); the row-by-row baselines take fewer at large sizes.
   * Modes: creations timed one at a time per mode and size; the eager mode takes fewer at large sizes.
   */
  samples: number;
  /** Modes only: which modes run, in this order. */
  modes: BenchMode[];
  /** Modes only: how long the concurrent creation load runs per mode and size, in seconds. */
  seconds: number;
  /** Modes only: creations in flight during the load (the eager mode takes fewer at large sizes). */
  concurrency: number;
  /** Modes only: GET /users?limit=100 pages timed per mode, size and phase. */
  reads: number;
}

export const USERS_USAGE = [
  'usage: npm run bench -- users [--modes sync,deferred] [--sizes 10000,100000,1000000] [--samples 500]',
  '                              [--seconds 10] [--concurrency 32] [--reads 300]',
  '       npm run bench -- users --baselines [--sizes 1000,10000,100000] [--samples 30]',
  '  (--modes takes sync, eager (= sync) and deferred)',
].join('\n');

/** Bad command-line arguments: the message ends with the usage line. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const MODES_DEFAULTS: UsersBenchOptions = {
  suite: 'modes',
  sizes: [10_000, 100_000, 1_000_000],
  samples: 500,
  modes: [...BENCH_MODES],
  seconds: 10,
  concurrency: 32,
  reads: 300,
};

const BASELINES_DEFAULTS = { sizes: [1000, 10_000, 100_000], samples: 30 };

const VALUE_FLAGS = ['--sizes', '--samples', '--modes', '--seconds', '--concurrency', '--reads'] as const;
const MODES_ONLY = ['--modes', '--seconds', '--concurrency', '--reads'];

/**
 * Reads `--baselines`, `--sizes a,b,c`, `--samples n`, `--modes a,b`, `--seconds s`, `--concurrency c` and
 * `--reads n` (also `--name=value`); throws with the usage line otherwise.
 */
export function parseUsersOptions(argv: readonly string[]): UsersBenchOptions {
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  const given = new Map<string, string>();
  let baselines = false;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    if (flag === '--baselines') {
      baselines = true;
      continue;
    }
    const value = args[i + 1];
    if (!(VALUE_FLAGS as readonly string[]).includes(flag) || value === undefined || value.startsWith('--'))
      throw new UsageError(`unknown or incomplete argument "${flag}"\n${USERS_USAGE}`);
    given.set(flag, value);
    i++;
  }
  if (baselines) {
    const misplaced = MODES_ONLY.find((flag) => given.has(flag));
    if (misplaced) throw new UsageError(`${misplaced} does not go with --baselines\n${USERS_USAGE}`);
  }
  const defaults = baselines
    ? { ...MODES_DEFAULTS, ...BASELINES_DEFAULTS, suite: 'baselines' as const }
    : MODES_DEFAULTS;
  const options: UsersBenchOptions = { ...defaults, sizes: [...defaults.sizes], modes: [...defaults.modes] };
  for (const [flag, value] of given) {
    if (flag === '--sizes') options.sizes = value.split(',').map((s) => positiveInt(s, flag));
    else if (flag === '--samples') options.samples = positiveInt(value, flag);
    else if (flag === '--seconds') options.seconds = positiveInt(value, flag);
    else if (flag === '--concurrency') options.concurrency = positiveInt(value, flag);
    else if (flag === '--reads') options.reads = positiveInt(value, flag);
    else if (flag === '--modes') options.modes = parseModes(value);
  }
  // The mode comparison reads pages of 100 at random places of the seeded users and samples five pages.
  const small = options.suite === 'modes' ? options.sizes.find((size) => size < 1000) : undefined;
  if (small !== undefined)
    throw new UsageError(`--sizes: the mode comparison needs at least 1000 users, got ${small}\n${USERS_USAGE}`);
  return options;
}

function parseModes(raw: string): BenchMode[] {
  const modes = raw.split(',').map((m) => {
    const mode = m.trim() === 'eager' ? 'sync' : m.trim();
    if (!(BENCH_MODES as readonly string[]).includes(mode))
      throw new UsageError(`--modes takes sync (or eager) and deferred, got "${m}"\n${USERS_USAGE}`);
    return mode as BenchMode;
  });
  return BENCH_MODES.filter((mode) => modes.includes(mode));
}

/** (a) and (b) do one statement per user, so they get fewer samples as the table grows. */
export function baselineSamples(size: number, samples: number): number {
  return Math.min(samples, size <= 1000 ? 30 : size <= 10_000 ? 10 : 5);
}

/**
 * Every eager creation updates every other user, so the eager mode gets fewer one-at-a-time creations as the
 * table grows: at most 100 up to 10,000 users, 30 up to 100,000, 10 beyond (each takes seconds there).
 */
export function eagerSamples(size: number, samples: number): number {
  return Math.min(samples, size <= 10_000 ? 100 : size <= 100_000 ? 30 : 10);
}

/**
 * Creations the eager mode keeps in flight during the load: they queue on the creation lock, so at large sizes
 * a full set would wait longer than the transaction deadline; 8 up to 100,000 users, 2 beyond.
 */
export function eagerConcurrency(size: number, concurrency: number): number {
  return Math.min(concurrency, size <= 10_000 ? concurrency : size <= 100_000 ? 8 : 2);
}

function positiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${flag} takes whole numbers of at least 1, got "${raw}"\n${USERS_USAGE}`);
  return Number(raw);
}
