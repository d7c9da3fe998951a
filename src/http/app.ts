import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ErrorTable } from '../platform/context/context-module.ts';
import type { Metrics } from '../platform/observability/metrics.ts';
import { installProblemHandlers, problemCodeOf } from './problem.ts';
import { registerHealthRoutes, type ReadinessCheck } from './health.ts';
import { installRequestDeadline } from './request-deadline.ts';
import { installRequestSpans } from './request-spans.ts';

export type App = FastifyInstance;

export interface AppOptions {
  bodyLimitBytes: number;
  /** Each request's deadline unless its route sets `config.deadlineMs`; answered 503 shortly after it at the latest. */
  requestDeadlineMs: number;
  logger: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck;
  /** Every error code with its HTTP status: the platform's and the contexts' (mergeErrorTables); default: the platform's only. */
  errors?: ErrorTable;
  /** Each bounded context adds its routes here. */
  routes: Array<(app: App) => void>;
  /** The OpenAPI document's title: `stratum`, or the service's in the split deployment (`stratum quotes`). */
  title?: string;
  /** False for a service without a database: /readyz then says nothing of one. */
  database?: boolean;
}

/**
 * Fastify's own request logging with one info line per request: `request completed` (status, response time;
 * `request errored` at error), the `incoming request` line at debug only.
 */
class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest, _reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }
}

/**
 * Builds the Fastify app: strict schemas (no coercion of bodies, unknown fields rejected), problem+json
 * errors, OpenAPI at /docs, health and metrics. The caller listens and closes it.
 * @example const app = await buildApp({ bodyLimitBytes: 65536, requestDeadlineMs: 2000, logger: pino(), metrics, readiness, routes: [usersRoutes] });
 */
export async function buildApp(options: AppOptions): Promise<App> {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new RequestLogController(),
    bodyLimit: options.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installProblemHandlers(app, options.errors);
  installRequestSpans(app);
  installRequestDeadline(app, { defaultMs: options.requestDeadlineMs, now: Date.now });
  await app.register(swagger, {
    openapi: {
      info: {
        title: options.title ?? 'stratum',
        version: '0.1.0',
        description: 'A data service on PostgreSQL. Errors are application/problem+json with a stable `code`.',
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.addHook('onResponse', async (request, reply) => {
    options.metrics.observeRequest({
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: reply.statusCode,
      ms: reply.elapsedTime,
      code: problemCodeOf(reply),
    });
  });

  registerHealthRoutes(app, options.readiness, options.metrics, { database: options.database !== false });
  for (const register of options.routes) register(app);
  await app.ready();
  return app;
}
