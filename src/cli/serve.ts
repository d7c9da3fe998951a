import type { Config } from '../config/config.ts';
import { startServer } from '../app/server.ts';

export const SERVE_HELP = `usage: stratum serve

Runs the HTTP API on HOST:PORT (default 127.0.0.1:8080) until SIGINT or SIGTERM, then finishes the requests in
flight and stops; a second signal exits at once. The database is DATABASE_URL, or with none the embedded
PostgreSQL of STRATUM_HOME (default ./.stratum), started and stopped with the server.`;

/** `stratum serve`: runs until SIGINT or SIGTERM, then shuts down gracefully; a second signal forces the exit. */
export async function runServe(config: Config, log: (line: string) => void): Promise<number> {
  const server = await startServer(config, (line) => log(`stratum: ${line}`));
  log(`stratum: listening on ${server.url} (database: ${config.database.kind === 'embedded' ? `embedded, ${config.database.home}` : 'DATABASE_URL'})`);
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log(`stratum: ${signal} again, exiting now`);
        process.exit(130);
      }
      log(`stratum: ${signal} received, finishing requests in flight`);
      server.stop().then(() => {
        log('stratum: stopped');
        resolve(0);
      }, (error) => {
        log(`stratum: shutdown failed: ${(error as Error).message}`);
        resolve(1);
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
