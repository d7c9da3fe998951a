import { runCli } from './cli/main.ts';

/**
 * The process: the `stratum` command (bin/stratum.js runs this file). `stratum serve` builds the service through
 * the composition root in src/app/.
 */
process.exitCode = await runCli(process.argv.slice(2));
