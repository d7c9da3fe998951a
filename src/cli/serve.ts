import type { Config } from '../config/config.ts';
import { startServer } from '../main.ts';

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
