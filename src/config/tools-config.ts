import path from 'node:path';
import { debugEnabled } from './config.ts';

/**
 * The settings of the tools (`npm run tools -- lab|chaos|loadtest`), read from the environment in one place.
 * The service's own settings are in config.ts; broker chaos also loads those for its database.
 */
export interface ToolsConfig {
  readonly lab: {
    /** Where the failover lab keeps its data, PID files and logs: STRATUM_LAB_DIR, default $STRATUM_HOME/lab. */
    readonly dir: string;
  };
  readonly chaos: {
    /** The lab cluster's multi-host URL that `chaos failover` checks acknowledged writes on (DATABASE_URL). */
    readonly clusterUrl: string | undefined;
    /** The broker `chaos broker` stops and starts (BROKER_URL); unset: the machine's default port. */
    readonly brokerUrl: string | undefined;
  };
  /** STRATUM_DEBUG set: a failure prints its stack too. */
  readonly debug: boolean;
}

export class ToolsConfigError extends Error {
  override name = 'ToolsConfigError';
}

type Env = Record<string, string | undefined>;

/** A bad value as an error shows it: a URL by its scheme only (the rest may hold a password). */
function shown(raw: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw);
  if (scheme) return `a ${scheme[1]}:// URL`;
  return `"${raw.length > 40 ? `${raw.slice(0, 40)}...` : raw}"`;
}

function readDir(env: Env, name: string, cwd: string, fallback: string): string {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (/[\0\n\r]/.test(raw))
    throw new ToolsConfigError(`${name} must be a directory path, got ${JSON.stringify(raw.slice(0, 60))}`);
  return path.resolve(cwd, raw);
}

/**
 * Reads the tools' settings from an environment; a bad value throws a ToolsConfigError naming the variable.
 * @example const settings = loadToolsConfig(process.env, process.cwd());
 */
export function loadToolsConfig(env: Env, cwd: string): ToolsConfig {
  const home = readDir(env, 'STRATUM_HOME', cwd, path.resolve(cwd, '.stratum'));
  const labDir = readDir(env, 'STRATUM_LAB_DIR', cwd, path.join(home, 'lab'));
  const clusterUrl = env.DATABASE_URL?.trim() || undefined;
  if (clusterUrl && !/^postgres(ql)?:\/\//i.test(clusterUrl)) {
    throw new ToolsConfigError(
      `DATABASE_URL must be a postgres:// URL (the lab's is printed by \`npm run tools -- lab up\`), got ${shown(clusterUrl)}`,
    );
  }
  const brokerUrl = env.BROKER_URL?.trim() || undefined;
  if (brokerUrl) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(brokerUrl);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !parsed.hostname) {
      throw new ToolsConfigError(
        `BROKER_URL must be a URL with a host, such as amqp://guest:guest@127.0.0.1:5672 or nats://127.0.0.1:4222, got ${shown(brokerUrl)}`,
      );
    }
  }
  return Object.freeze({
    lab: Object.freeze({ dir: labDir }),
    chaos: Object.freeze({ clusterUrl, brokerUrl }),
    debug: debugEnabled(env),
  });
}
