import { ConfigError, debugEnabled, loadConfig } from '../config/config.ts';
import { isAppError } from '../platform/errors/app-error.ts';
import { DLQ_HELP, runDlq } from './dlq.ts';
import { IMPORT_HELP, runImport } from './import.ts';
import { LANDSCAPE_HELP, runLandscape } from './landscape.ts';
import { MIGRATE_HELP, runMigrate } from './migrate.ts';
import { runSeed, SEED_HELP } from './seed.ts';
import { runServe, SERVE_HELP } from './serve.ts';
import { PROTO_HELP, runProto } from './proto.ts';
import { runShards, SHARDS_HELP } from './shards.ts';
import { runUsers, USERS_HELP } from './users.ts';

const HELP = `stratum: a data service on PostgreSQL

Usage: stratum <command> [options]

Commands:
  serve                     run the HTTP API (HOST, PORT; DATABASE_URL or the embedded server of STRATUM_HOME)
  migrate up                apply every pending migration
  migrate down [n]          revert the n most recent migrations (default 1)
  migrate status            list migrations and whether each is applied
  seed accounts [--count N] [--start S]
                            create Person_S..Person_(S+N-1) with events and images; idempotent (see seed --help)
  import order-items --order ID --file items.csv [--chunk-size N] [--atomic]
                            stream CSV items into an order through COPY (see import --help)
  dlq list|show|replay|drop --group G [--id ID]
                            dead letters of a consumer group (see dlq --help)
  shards status|add <url>|add --database <name>|rebalance
                            the orders shards: health, adding one, moving buckets online (see shards --help)
  proto                     print the Protocol Buffers messages of the events (EVENT_ENCODING=protobuf)
  users compact [--batch N] | users status
                            fold the score log of SCORE_MODE=deferred into the stored scores (see users --help)
  landscape up [--images N] [--quotes N]
                            the split accounts deployment on loopback: gateway, data, images, quotes (see landscape --help)
  help                      show this text; <command> --help shows that command's

With no DATABASE_URL, commands use the embedded PostgreSQL of STRATUM_HOME (default ./.stratum):
the running server's if \`stratum serve\` is up, otherwise one started for the command.

The failover lab, chaos runs and load generation are tools apart from the service: \`npm run tools -- help\`.`;

/** Each command's own usage, for `stratum <command> --help`. */
const COMMAND_HELP: Record<string, string> = {
  serve: SERVE_HELP,
  migrate: MIGRATE_HELP,
  seed: SEED_HELP,
  import: IMPORT_HELP,
  dlq: DLQ_HELP,
  shards: SHARDS_HELP,
  landscape: LANDSCAPE_HELP,
  users: USERS_HELP,
  proto: PROTO_HELP,
};

/** Commands that moved to the tools (`npm run tools -- <command>`). */
const TOOL_COMMANDS: readonly string[] = ['lab', 'chaos', 'loadtest'];

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
  if (TOOL_COMMANDS.includes(command)) {
    err(
      `stratum: ${command} is not a stratum command but a tool: run \`npm run tools -- ${command}${rest.length > 0 ? ` ${rest.join(' ')}` : ''}\``,
    );
    return 2;
  }
  const help = Object.hasOwn(COMMAND_HELP, command) ? COMMAND_HELP[command] : undefined;
  // Before the configuration is read: help needs no database, and a bad setting does not hide it.
  if (help && (rest.includes('--help') || rest.includes('-h'))) {
    out(help);
    return 0;
  }
  // Needs neither the configuration nor a database.
  if (command === 'proto') return runProto({ out });
  // Read apart from loadConfig: a stack is printed even when loadConfig itself fails.
  const debug = debugEnabled(process.env);
  try {
    const config = loadConfig(process.env, process.cwd());
    switch (command) {
      case 'serve':
        return await runServe(config, err);
      case 'migrate':
        return await runMigrate(config, rest, { out, err });
      case 'seed':
        return await runSeed(config, rest, { out, err });
      case 'dlq':
        return await runDlq(config, rest, { out, err });
      case 'import':
        return await runImport(config, rest, { out, err });
      case 'shards':
        return await runShards(config, rest, { out, err });
      case 'landscape':
        return await runLandscape(config, rest, { out, err });
      case 'users':
        return await runUsers(config, rest, { out, err });
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
    if (debug) err((error as Error)?.stack ?? '');
    return 1;
  }
}
