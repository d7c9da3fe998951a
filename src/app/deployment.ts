import { pino } from 'pino';
import { isLoopback, type Config } from '../config/config.ts';
import { accountsModule } from '../contexts/accounts/module.ts';
import { gatewayRoutes } from '../contexts/accounts/gateway.ts';
import { remoteAccountPorts } from '../contexts/accounts/remote.ts';
import { imagesModule } from '../contexts/images/module.ts';
import { pickQuote } from '../contexts/quotes/quotes.ts';
import { quotesRoutes } from '../contexts/quotes/routes.ts';
import { buildApp } from '../http/app.ts';
import { mergeErrorTables, PLATFORM_ERRORS } from '../http/error-statuses.ts';
import { AppError } from '../platform/errors/app-error.ts';
import { createServiceClient, type ServiceClient } from '../platform/remote/service-client.ts';
import { createMetrics } from '../platform/observability/metrics.ts';
import { startServer } from './server.ts';
import { instanceName, startProcessTracing } from './services.ts';
import { tracesRoutes } from '../http/traces.ts';

/** A running process of any role: where it listens, and how it stops. */
export interface RunningService {
  url: string;
  /** Whether it serves the dashboard (a process with a database). */
  dashboard: boolean;
  stop(): Promise<void>;
}

/** The clients of the services a role calls, each with the platform's retries, breakers and balancing. */
function clientOf(config: Config, name: string, urls: readonly string[], log: (line: string) => void): ServiceClient {
  return createServiceClient({
    name,
    urls,
    onInstanceChange: (url, inRotation) =>
      log(`${name}: ${url} ${inRotation ? 'is back in rotation' : 'is out of rotation (its breaker opened)'}`),
  });
}

/**
 * Starts the process ROLE names: every context in one process (`all`, `api`, `worker`), or one service of the
 * split accounts deployment: `accounts-data` (the accounts context), `images` (the images context, reaching
 * accounts-data over HTTP), and, without a database, `quotes` and `accounts` (the gateway).
 * @example const service = await startService(loadConfig(process.env, process.cwd()), console.log);
 */
export async function startService(config: Config, log: (line: string) => void): Promise<RunningService> {
  const urls = config.serviceUrls;
  switch (config.role) {
    case 'accounts-data': {
      const server = await startServer(config, log, { contexts: [accountsModule] });
      return { url: server.url, dashboard: true, stop: () => server.stop() };
    }
    case 'images': {
      const data = clientOf(config, 'accounts-data', urls.accountsData, log);
      const server = await startServer(config, log, {
        contexts: [imagesModule],
        // On the embedded default it shares the server accounts-data started.
        embeddedRole: 'command',
        ports: remoteAccountPorts(data),
        close: () => data.close(),
      });
      return { url: server.url, dashboard: true, stop: () => server.stop() };
    }
    case 'quotes':
      return startWithoutDatabase(config, 'quotes', [], () => [
        quotesRoutes({ pick: pickQuote(config.host, Math.random), instance: instanceName(config) }),
      ]);
    case 'accounts': {
      const clients = {
        data: clientOf(config, 'accounts-data', urls.accountsData, log),
        images: clientOf(config, 'images', urls.images, log),
        quotes: clientOf(config, 'quotes', urls.quotes, log),
      };
      return startWithoutDatabase(
        config,
        'accounts gateway',
        Object.values(clients),
        () => [
          gatewayRoutes({
            ...clients,
            instance: instanceName(config),
            imagesTimeoutMs: config.imagesTimeoutMs,
            quotesTimeoutMs: config.quotesTimeoutMs,
          }),
        ],
        // Ready while the account itself can be read; images and quotes only degrade answers.
        () => {
          if (!clients.data.state().some((i) => i.inRotation))
            throw new AppError('DEPENDENCY.UNAVAILABLE', 'no instance of accounts-data is in rotation', {
              details: { dependency: 'accounts-data', instances: clients.data.state() },
            });
        },
      );
    }
    default: {
      const server = await startServer(config, log);
      return { url: server.url, dashboard: true, stop: () => server.stop() };
    }
  }
}

/** A service of the split deployment without a database: its routes, health, readiness from its clients, metrics. */
async function startWithoutDatabase(
  config: Config,
  title: string,
  clients: readonly ServiceClient[],
  routes: () => Array<Parameters<typeof buildApp>[0]['routes'][number]>,
  mustBeReady: () => void = () => {},
): Promise<RunningService> {
  const metrics = createMetrics({ applicationName: `stratum-${config.role}-${process.pid}`, poolMax: config.poolMax });
  const { tracing, peers } = startProcessTracing(config);
  const app = await buildApp({
    bodyLimitBytes: config.bodyLimitBytes,
    requestDeadlineMs: config.txDeadlineMs,
    logger: pino({ level: config.logLevel }),
    metrics,
    database: false,
    title: `stratum ${title}`,
    errors: mergeErrorTables([PLATFORM_ERRORS, accountsModule.errors]),
    readiness: async () => {
      mustBeReady();
      return {
        instance: instanceName(config),
        ...(clients.length > 0 ? { dependencies: Object.fromEntries(clients.map((c) => [c.name, c.state()])) } : {}),
      };
    },
    routes: [
      ...routes(),
      tracesRoutes({ store: tracing.store, peers, open: isLoopback(config.host), token: config.adminToken }),
    ],
  });
  const closeClients = () => Promise.all(clients.map((c) => c.close())).then(() => {});
  let url: string;
  try {
    url = await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await app.close().catch(() => {});
    await closeClients();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    url,
    dashboard: false,
    stop() {
      stopping ??= (async () => {
        const cut = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutMs);
        try {
          await app.close();
        } finally {
          clearTimeout(cut);
          await closeClients();
          await tracing.flush().catch(() => {});
        }
      })();
      return stopping;
    },
  };
}
