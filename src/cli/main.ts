import { ConfigError, loadConfig } from '../config/config.ts';
import { isAppError } from '../platform/errors/app-error.ts';
import { runLoadtestCommand } from './loadtest/command.ts';
import { runDlq } from './dlq.ts';
import { runImport } from './import.ts';
import { runLab } from './lab.ts';
import { runMigrate } from './migrate.ts';
import { runSeed } from './seed.ts';
import { runServe } from './serve.ts';
import { runShards } from './shards.ts';
import { runChaos } from './chaos/command.ts';

const HELP = `stratum: a data service on PostgreSQL

Usage: stratum <command> [options]

Commands:
  serve                     run the HTTP API (HOST, PORT; DATABASE_URL or the embedded server of STRATUM_HOME)
  migrate up                apply every pending migration
  migrate down [n]          revert the n most recent migrations (default 1)
  migrate status            list migrations and whether each is applied
  seed accounts [--count N] [--start S]
                            create Person_S..Person_(S+N-1) with events and images; idempotent (see seed --help)
  loadtest <scenario> --url URL --rate R --duration S [--ramp S] [--json FILE]
                            open-model load: accounts-read, accounts-mixed, orders-mixed or orders-contention (see loadtest --help)
  import order-items --order ID --file items.csv [--chunk-size N] [--atomic]
                            stream CSV items into an order through COPY (see import --help)
  dlq list|show|replay|drop --group G [--id ID]
                            dead letters of a consumer group (see dlq --help)
  shards status|add <url>|add --database <name>|rebalance
                            the orders shards: health, adding one, moving buckets online (see shards --help)
  chaos failover --scenario accounts-mixed --rate R --duration S --fault kill-leader@S
                            load a running stratum on the lab cluster, fail its primary, verify every acknowledged write
  chaos broker --broker rabbitmq|nats --fault stop@S --for S
                            stop and restart a broker under event load; report events lost and effects doubled
  lab up|down|status|kill-leader|kill-postgres|switchover
                            a 3-node Patroni cluster on loopback to try failover (root; see lab --help)
  help                      show this text

With no DATABASE_URL, commands use the embedded PostgreSQL of STRATUM_HOME (default ./.stratum):
the running server's if \`stratum serve\` is up, otherwise one started for the command.`;

const err = (line: string) => process.stderr.write(`${line}\n`);
const out = (line: string) => process.stdout.write(`${line}\n`);

/**
 * Runs one command and returns the exit code. Failures print one line, not a stack trace.
 * @example process.exitCode = await runCli(['migrate', 'status']);
 */
export async function runCli(argv: string[]): Promise<number> {
  const command = argv[0]?.startsWith('-') ? undefined : argv[0];
  // Each command parses its own options: hand it everything after its name.
  const rest = argv.slice(1);
  if (!command || command === 'help') {
    out(HELP);
    return 0;
  }
  if (command === 'loadtest') return runLoadtestCommand(rest, { out, err });
  if (command === 'lab') return runLab(rest, { out, err }, { env: process.env, cwd: process.cwd() });
  if ((rest.includes('--help') || rest.includes('-h')) && command !== 'seed' && command !== 'dlq' && command !== 'import' && command !== 'shards' && command !== 'chaos') {
    out(HELP);
    return 0;
  }
  try {
    const config = loadConfig(process.env, process.cwd());
    switch (command) {
      case 'serve': return await runServe(config, err);
      case 'migrate': return await runMigrate(config, rest, { out, err });
      case 'seed': return await runSeed(config, rest, { out, err });
      case 'dlq': return await runDlq(config, rest, { out, err });
      case 'import': return await runImport(config, rest, { out, err });
      case 'shards': return await runShards(config, rest, { out, err });
      case 'chaos': return await runChaos(config, rest, { out, err }, process.env);
      default:
        err(`stratum: unknown command "${command}"; see \`stratum help\``);
        return 2;
    }
  } catch (error) {
    if (error instanceof ConfigError || isAppError(error)) {
      err(`stratum: ${error.message}`);
      return 1;
    }
    err(`stratum: ${(error as Error)?.message ?? String(error)}`);
    if (process.env.STRATUM_DEBUG) err((error as Error)?.stack ?? '');
    return 1;
  }
}
