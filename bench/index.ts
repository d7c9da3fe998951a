import { runUsersBench } from './users.ts';

/** `npm run bench -- <name> [options]`: runs one benchmark, then exits (pools and servers closed). */
const benchmarks: Record<string, (argv: readonly string[]) => Promise<void>> = {
  users: runUsersBench,
};

const [name, ...rest] = process.argv.slice(2);
const run = name ? benchmarks[name] : undefined;
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benchmarks).join('|')}> [options]${name ? ` (no benchmark named "${name}")` : ''}`);
  process.exit(2);
}
try {
  await run(rest);
  process.exit(0);
} catch (error) {
  console.error(`bench ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
  if (error instanceof Error && error.stack && !(error.message.includes('usage:'))) console.error(error.stack);
  process.exit(1);
}
