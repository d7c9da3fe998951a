import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../platform/observability/metrics.ts';
import { isAppError } from '../platform/errors/app-error.ts';
import { problem, sendProblem } from './problem.ts';

/**
 * Resolves when the database answers, with what it says about itself (a cluster: primary, replicas' lag); rejects
 * (or takes too long) when it does not. An AppError it throws is answered with its code and details (a shard that
 * does not answer, a pool refusing callers).
 */
export type ReadinessCheck = () => Promise<Record<string, unknown> | void>;

const READY_TIMEOUT_MS = 1000;

export function registerHealthRoutes(app: FastifyInstance, ready: ReadinessCheck, metrics: Metrics): void {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (request, reply) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const details = await Promise.race([
        ready(),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS); }),
      ]);
      return { status: 'ready', database: 'ok', ...details };
    } catch (error) {
      request.log.warn({ err: error }, 'not ready');
      if (isAppError(error)) return sendProblem(reply, problem(503, error.code, error.message, error.details ? { details: error.details } : {}), 2);
      return sendProblem(reply, problem(503, 'DB.UNAVAILABLE', `the database did not answer: ${(error as Error).message}`), 2);
    } finally {
      clearTimeout(timer);
    }
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
