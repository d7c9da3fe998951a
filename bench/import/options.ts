import { UsageError } from '../users/options.ts';

export interface ImportBenchOptions {
  /** Rows of the generated file every method imports; the memory check also imports a fifth of it. */
  rows: number;
  /** Timed imports per method, interleaved; the report gives the median. */
  rounds: number;
  /** When set, the server process writes a V8 CPU profile (.cpuprofile) here when it stops. */
  cpuProfileDir: string | undefined;
}

/** Where the embedded PostgreSQL of this benchmark lives (git-ignored, like every `.stratum-*`). */
export const BENCH_IMPORT_HOME = '.stratum-bench-import';

export const IMPORT_BENCH_USAGE = 'usage: npm run bench -- import [--rows 1000000] [--rounds 3] [--cpu-prof DIR]';

/** Reads `--rows n`, `--rounds n` and `--cpu-prof dir` (also `--name=value`); throws UsageError with the usage line otherwise. */
export function parseImportOptions(argv: readonly string[]): ImportBenchOptions {
  const options: ImportBenchOptions = { rows: 1_000_000, rounds: 3, cpuProfileDir: undefined };
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--rows' && value) options.rows = positiveInt(value, flag, 10);
    else if (flag === '--rounds' && value) options.rounds = positiveInt(value, flag, 1);
    else if (flag === '--cpu-prof' && value) options.cpuProfileDir = value;
    else throw new UsageError(`unknown or incomplete argument "${flag}"\n${IMPORT_BENCH_USAGE}`);
  }
  return options;
}

function positiveInt(raw: string, flag: string, min: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > 10_000_000) {
    throw new UsageError(`${flag} takes whole numbers from ${min} to 10000000, got "${raw}"\n${IMPORT_BENCH_USAGE}`);
  }
  return Number(raw);
}
