import { pino, type Logger } from 'pino';
import { isLoopback, type Config } from '../config/config.ts';
import { startService } from '../app/deployment.ts';

export const SERVE_HELP = `usage: stratum serve

Runs the HTTP API on HOST:PORT (default 127.0.0.1:8080) until SIGINT or SIGTERM, then finishes the requests in
flight and stops; a second signal exits at once. The database is DATABASE_URL, or with none the embedded
PostgreSQL of STRATUM_HOME (default ./.stratum), started and stopped with the server.

It writes JSON lines (pino): the request and application logs on stdout, its own lines (start-up, signals,
shutdown) on stderr. A failure to start is one plain line on stderr.`;

/**
 * The server's own lines (database start-up, migrations applied, listening, signals, stopped) as pino JSON lines,
 * the format of the request logs, each handed to `write` without its newline. At info whatever LOG_LEVEL says
 * (an operator always learns where the server listens and why it stopped), unless LOG_LEVEL is `silent`.
 * @example const logger = serveLogger(config, (line) => process.stderr.write(`${line}\n`));
 */
export function serveLogger(config: Config, write: (line: string) => void): Logger {
  return pino(
    { level: config.logLevel === 'silent' ? 'silent' : 'info' },
    {
      write: (chunk: string) => write(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk),
    },
  );
}

/**
 * `stratum serve`: runs until SIGINT or SIGTERM, then shuts down gracefully; a second signal forces the exit.
 * `write` takes the server's JSON lines (the CLI passes stderr); a failure to start is thrown, for the CLI's one line.
 */
export async function runServe(config: Config, write: (line: string) => void): Promise<number> {
  const logger = serveLogger(config, write);
  const server = await startService(config, (line) => logger.info(line));
  const database = !server.dashboard
    ? 'none'
    : config.database.kind === 'embedded'
      ? `embedded, ${config.database.home}`
      : 'DATABASE_URL';
  logger.info({ url: server.url, database, role: config.role }, `listening on ${server.url} (database: ${database})`);
  if (server.dashboard)
    logger.info(
      { dashboard: `${server.url}/dashboard` },
      `dashboard: ${server.url}/dashboard${isLoopback(config.host) ? '' : ' (send ADMIN_TOKEN: ?token=… or Authorization: Bearer …)'}`,
    );
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, `${signal} again, exiting now`);
        process.exit(130);
      }
      logger.info({ signal }, `${signal} received, finishing requests in flight`);
      server.stop().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (error) => {
          logger.error({ err: error }, `shutdown failed: ${(error as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
