import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/config.ts';
import { startServer, type RunningServer } from '../../src/app/server.ts';
import type { CreationMethod } from './method.ts';

/** The contexts' own database roles: their passwords come from these variables on a server stratum does not own. */
const ROLE_PASSWORD_VARIABLES = ['ACCOUNTS_DB_PASSWORD', 'IMAGES_DB_PASSWORD'];

/**
 * Starts stratum in this process (its composition root: pools, migrations, routes, transactions, metrics) on
 * 127.0.0.1 and a free port, over the database at `databaseUrl`. The deadline is generous so 100,000-user
 * fan-outs finish. On the benchmark's own server the contexts' roles get throwaway passwords; on
 * DATABASE_URL's they come from the environment, as for `stratum serve`. `extraEnv` adds to (or overrides) the
 * server's environment, e.g. `{ SCORE_MODE: 'deferred' }`.
 */
export async function startStratum(
  databaseUrl: string,
  ownServer: boolean,
  extraEnv: Readonly<Record<string, string>> = {},
): Promise<RunningServer> {
  const rolePasswords = Object.fromEntries(
    ROLE_PASSWORD_VARIABLES.map((name) => [
      name,
      ownServer ? randomBytes(18).toString('base64url') : process.env[name],
    ]),
  );
  const env = {
    ...rolePasswords,
    DATABASE_URL: databaseUrl,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    TX_DEADLINE_MS: '60000',
    ...extraEnv,
  };
  return startServer(loadConfig(env, process.cwd()), () => {});
}

/** stratum itself: a real HTTP POST /users with Node's fetch, timed until the 201 body has been read. */
export function stratumOverHttp(baseUrl: string): CreationMethod {
  return {
    name: 'stratum: POST /users over HTTP',
    async create(input) {
      const response = await fetch(`${baseUrl}/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          username: input.username,
          score: 0,
          profile: { firstname: input.firstname, lastname: input.lastname },
        }),
      });
      const body = await response.text();
      if (response.status !== 201) throw new Error(`POST /users answered ${response.status}: ${body}`);
    },
  };
}
