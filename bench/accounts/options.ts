import { UsageError } from '../users/options.ts';

export interface AccountsBenchOptions {
  /** Seconds of load per target and round. */
  durationSeconds: number;
  /** Untimed load per target before the first round. */
  warmUpSeconds: number;
  /** Every target runs once per round; the report is the mean over rounds. */
  rounds: number;
  /** Whether the split deployment (five processes, twice: tracing on and off) is started and loaded. */
  split: boolean;
}

export const ACCOUNTS_USAGE = 'usage: npm run bench -- accounts [--duration 10] [--rounds 2] [--no-split]';

/**
 * Reads `--duration s`, `--rounds n` (also `--name=value`) and `--no-split`; throws UsageError with the usage line
 * otherwise.
 */
export function parseAccountsOptions(argv: readonly string[]): AccountsBenchOptions {
  let durationSeconds = 10;
  let rounds = 2;
  let split = true;
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--no-split') {
      split = false;
      i--; // a flag without a value
    } else if (flag === '--duration' && value) durationSeconds = positiveInt(value, flag);
    else if (flag === '--rounds' && value) rounds = positiveInt(value, flag);
    else throw new UsageError(`unknown or incomplete argument "${flag}"\n${ACCOUNTS_USAGE}`);
  }
  // Long enough to fill the hot set, open every pool connection and let V8 optimise the path; never longer than a run.
  return { durationSeconds, rounds, split, warmUpSeconds: Math.min(3, durationSeconds) };
}

function positiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${flag} takes whole numbers of at least 1, got "${raw}"\n${ACCOUNTS_USAGE}`);
  return Number(raw);
}
