import { loadConfig } from '../../src/config/config.ts';
import { startServer, type RunningServer } from '../../src/main.ts';
import type { CreationMethod } from './method.ts';

/**
 * Starts stratum in this process (its own pool, routes, transactions and metrics) on 127.0.0.1 and a free
 * port, over the database at `databaseUrl`. The deadline is generous so 100,000-user fan-outs finish.
 */
export async function startStratum(databaseUrl: string): Promise<RunningServer> {
  const config = loadConfig({ DATABASE_URL: databaseUrl, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', TX_DEADLINE_MS: '60000' }, process.cwd());
  return startServer(config, () => {});
}

/** stratum itself: a real HTTP POST /users with Node's fetch, timed until the 201 body has been read. */
export function stratumOverHttp(baseUrl: string): CreationMethod {
  return {
    name: 'stratum: POST /users over HTTP',
    async create(input) {
      const response = await fetch(`${baseUrl}/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: input.username, score: 0, profile: { firstname: input.firstname, lastname: input.lastname } }),
      });
      const body = await response.text();
      if (response.status !== 201) throw new Error(`POST /users answered ${response.status}: ${body}`);
    },
  };
}
