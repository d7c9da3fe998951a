import { runAccountsBench } from './accounts.ts';
import { runCodecsBench } from './codecs.ts';
import { runContentionBench } from './contention.ts';
import { runImportBench } from './import.ts';
import { runMessagingBench } from './messaging.ts';
import { runShardsBench } from './shards.ts';
import { runUsersBench } from './users.ts';
import { UsageError } from './users/options.ts';

/** `npm run bench -- <name> [options]`: runs one benchmark, then exits (pools and servers closed). */
const benchmarks: Record<string, (argv: readonly string[]) => Promise<void>> = {
  users: runUsersBench,
  accounts: runAccountsBench,
  import: runImportBench,
  messaging: runMessagingBench,
  shards: runShardsBench,
  contention: runContentionBench,
  codecs: runCodecsBench,
};

const [name, ...rest] = process.argv.slice(2);
const run = name ? benchmarks[name] : undefined;
if (!run) {
  const known = Object.keys(benchmarks).join('|');
  console.error(
    `usage: npm run bench -- <${known}> [options]${name ? `  (there is no benchmark named "${name}")` : ''}`,
  );
  process.exit(2);
}
try {
  await run(rest);
  process.exit(0);
} catch (error) {
  if (error instanceof UsageError) {
    console.error(error.message);
    process.exit(2);
  }
  console.error(`bench ${name} failed:`, error);
  process.exit(1);
}
