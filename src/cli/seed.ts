import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import type { Config } from '../config/config.ts';
import { seedAccountRange } from '../contexts/accounts/seed-accounts.ts';
import { seedImageRange } from '../contexts/images/seed-images.ts';
import { openDatabase } from '../app/database.ts';
import { openPools } from '../app/server.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const SEED_HELP = `usage: stratum seed accounts [--count N] [--start S]

Creates accounts Person_<S> ... Person_<S+N-1> (default S=0, N=15000), each with 1 to 5 events, and an image
for every even-numbered one. Ids are derived from the names, so running the same range again adds nothing;
use --start to add a new range (e.g. --start 15000 --count 5000). Applies pending migrations first.`;

const CHUNK = 1000;

/** `stratum seed accounts`: set-based inserts in chunks of 1,000, with a progress bar on a terminal. */
export async function runSeed(config: Config, args: string[], io: Io): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
    options: { count: { type: 'string' }, start: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.out(SEED_HELP);
    return 0;
  }
  const count = Number(values.count ?? 15000);
  const start = Number(values.start ?? 0);
  if (
    positionals[0] !== 'accounts' ||
    !Number.isSafeInteger(count) ||
    count < 1 ||
    count > 10_000_000 ||
    !Number.isSafeInteger(start) ||
    start < 0
  ) {
    io.err(SEED_HELP);
    return 2;
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  try {
    await database.migrator.up();
    const pools = await openPools(config, database);
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            format: 'seeding accounts [{bar}] {value}/{total} {percentage}% {duration_formatted}',
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    bar?.start(count, 0);
    const began = Date.now();
    let added = 0;
    let images = 0;
    try {
      for (let from = start; from < start + count; from += CHUNK) {
        const to = Math.min(from + CHUNK, start + count);
        added += (await pools.own.accounts!.begin((tx) => seedAccountRange(tx, from, to))) as number;
        images += await seedImageRange(pools.own.images!, from, to);
        bar?.update(to - start);
      }
    } finally {
      bar?.stop();
      await pools.end();
    }
    const seconds = ((Date.now() - began) / 1000).toFixed(1);
    io.out(
      `seeded Person_${start}..Person_${start + count - 1}: ${added} new accounts, ${count - added} already there, ${images} new images (${seconds} s)`,
    );
    return 0;
  } finally {
    await database.close();
  }
}
