export interface UsersBenchOptions {
  sizes: number[];
  /** Creations timed per size for stratum and (c); the row-by-row baselines take fewer at large sizes. */
  samples: number;
}

export const USERS_USAGE = 'usage: npm run bench -- users [--sizes 1000,10000,100000] [--samples 30]';

/** Bad command-line arguments: the message ends with the usage line. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const DEFAULTS: UsersBenchOptions = { sizes: [1000, 10_000, 100_000], samples: 30 };

/** Reads `--sizes a,b,c` and `--samples n` (also `--name=value`); throws with the usage line otherwise. */
export function parseUsersOptions(argv: readonly string[]): UsersBenchOptions {
  const options = { ...DEFAULTS };
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--sizes' && value) options.sizes = value.split(',').map((s) => positiveInt(s, flag));
    else if (flag === '--samples' && value) options.samples = positiveInt(value, flag);
    else throw new UsageError(`unknown or incomplete argument "${flag}"\n${USERS_USAGE}`);
  }
  return options;
}

/** (a) and (b) do one statement per user, so they get fewer samples as the table grows. */
export function baselineSamples(size: number, samples: number): number {
  return Math.min(samples, size <= 1000 ? 30 : size <= 10_000 ? 10 : 5);
}

function positiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${flag} takes whole numbers of at least 1, got "${raw}"\n${USERS_USAGE}`);
  return Number(raw);
}
