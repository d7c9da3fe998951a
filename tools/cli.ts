import { ConfigError, loadConfig } from '../src/config/config.ts';
import { loadToolsConfig, ToolsConfigError, type ToolsConfig } from '../src/config/tools-config.ts';
import { isAppError } from '../src/platform/errors/app-error.ts';
import { runChaos } from './chaos/command.ts';
import { runLab } from './lab/command.ts';
import { runLoadtestCommand } from './loadtest/command.ts';

export const TOOLS_HELP = `stratum tools: the failover lab, chaos runs and load generation (not part of the service)

Usage: npm run tools -- <command> [options]

Commands:
  lab up|down|status|kill-leader|kill-postgres|switchover
                            a 3-node Patroni cluster on loopback to try failover (root; see lab --help)
  loadtest <scenario> --url URL --rate R --duration S [--ramp S] [--json FILE]
                            open-model load against a running stratum: accounts-read, accounts-mixed, orders-mixed
                            or orders-contention (see loadtest --help)
  chaos failover --scenario accounts-mixed --rate R --duration S --fault kill-leader@S
                            load a running stratum on the lab cluster, fail its primary, verify every acknowledged write
  chaos broker --broker rabbitmq|nats --fault stop@S --for S
                            stop and restart a broker under event load; report events lost and effects doubled
  chaos services [--fault one-of-two|all-quotes]
                            start the split accounts services, SIGKILL and restart instances under the accounts-read
                            load; report failures, degraded answers, p99 per fault window and breaker delays
  help                      show this text

Settings: STRATUM_LAB_DIR (default $STRATUM_HOME/lab), DATABASE_URL (chaos failover: the lab's URL),
BROKER_URL (chaos broker); chaos services starts its services on DATABASE_URL, else the embedded PostgreSQL
of STRATUM_HOME. The service's own commands are \`npm run stratum -- help\`.`;

export interface ToolsIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

type Env = Record<string, string | undefined>;

/**
 * Runs one tool and returns the exit code (0 done, 1 failed, 2 bad arguments). Failures print one line.
 * @example process.exitCode = await runTools(['lab', 'status'], io, process.env, process.cwd());
 */
export async function runTools(argv: string[], io: ToolsIo, env: Env, cwd: string): Promise<number> {
  const command = argv[0]?.startsWith('-') ? undefined : argv[0];
  const rest = argv.slice(1);
  if (!command || command === 'help') {
    io.out(TOOLS_HELP);
    return 0;
  }
  let settings: ToolsConfig | undefined;
  try {
    settings = loadToolsConfig(env, cwd);
    switch (command) {
      case 'loadtest':
        return await runLoadtestCommand(rest, io);
      case 'lab':
        return await runLab(rest, io, settings.lab);
      case 'chaos':
        return await runChaos(rest, io, settings, () => loadConfig(env, cwd), env);
      default:
        io.err(`tools: unknown command "${command}"; see \`npm run tools -- help\``);
        return 2;
    }
  } catch (error) {
    if (error instanceof ToolsConfigError || error instanceof ConfigError || isAppError(error)) {
      io.err(`tools: ${error.message}`);
      return 1;
    }
    io.err(`tools: ${(error as Error)?.message ?? String(error)}`);
    if (settings?.debug) io.err((error as Error)?.stack ?? '');
    return 1;
  }
}
