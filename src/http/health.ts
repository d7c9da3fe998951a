import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import type { Metrics } from '../platform/observability/metrics.ts';
import { isAppError } from '../platform/errors/app-error.ts';
import { problem, sendProblem } from './problem.ts';
import { ProblemSchema } from './schemas.ts';

/**
 * Resolves when the database answers, with what it says about itself (a cluster: primary, replicas' lag); rejects
 * (or takes too long) when it does not. An AppError it throws is answered with its code and details (a shard that
 * does not answer, a pool refusing callers).
 */
export type ReadinessCheck = () => Promise<Record<string, unknown> | void>;

const READY_TIMEOUT_MS = 1000;
/** How long a client should wait before asking /readyz again after a 503. */
const READY_RETRY_AFTER_SECONDS = 2;

const TAGS = ['operations'];

/** GET /healthz: the process answers (it does not look at the database). */
export const HealthSchema = Type.Object({ status: Type.Literal('ok') }, { description: 'The process is up' });

/**
 * GET /readyz 200: the database answered. Open: the readiness check adds what it knows (`cluster` behind a
 * cluster, `reads` with a read pool, one entry per context that has a readiness check of its own).
 */
export const ReadySchema = Type.Object(
  {
    status: Type.Literal('ready'),
    database: Type.Literal('ok'),
  },
  {
    additionalProperties: true,
    description: 'Ready: the database answered; further entries describe the cluster, the read pool and each context',
  },
);

/** GET /readyz 200 on a service without a database of its own (quotes, the accounts gateway). */
export const StatelessReadySchema = Type.Object(
  { status: Type.Literal('ready') },
  {
    additionalProperties: true,
    description: 'Ready: the service answers; further entries describe the services it depends on',
  },
);

export function registerHealthRoutes(
  app: FastifyInstance,
  ready: ReadinessCheck,
  metrics: Metrics,
  options: { database?: boolean } = {},
): void {
  const database = options.database === false ? {} : { database: 'ok' as const };
  app.get(
    '/healthz',
    {
      schema: { tags: TAGS, summary: 'Liveness: the process answers', response: { 200: HealthSchema } },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: TAGS,
        summary: 'Readiness: the database answers within 1 s; otherwise 503 with the code of what failed',
        response: {
          200: options.database === false ? StatelessReadySchema : ReadySchema,
          503: {
            description:
              'Not ready: DB.UNAVAILABLE, or the code of the failing check (DB.POOL_EXHAUSTED, a shard, ...) with its details',
            headers: { 'retry-after': { type: 'string', description: 'seconds before asking again' } },
            content: { 'application/problem+json': { schema: ProblemSchema } },
          },
        },
      },
    },
    async (request, reply) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const details = await Promise.race([
          ready(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
          }),
        ]);
        return { status: 'ready' as const, ...database, ...details };
      } catch (error) {
        request.log.warn({ err: error }, 'not ready');
        if (isAppError(error)) {
          return sendProblem(
            reply,
            problem(503, error.code, error.message, error.details ? { details: error.details } : {}),
            READY_RETRY_AFTER_SECONDS,
          );
        }
        return sendProblem(
          reply,
          problem(503, 'DB.UNAVAILABLE', `the database did not answer: ${(error as Error).message}`),
          READY_RETRY_AFTER_SECONDS,
        );
      } finally {
        clearTimeout(timer);
      }
    },
  );

  // The exposition is text: a string reply with a text content type is sent as it is, never JSON-serialized.
  app.get(
    '/metrics',
    {
      schema: {
        tags: TAGS,
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        response: {
          200: {
            description: 'Every metric of this process in the Prometheus text format',
            content: { 'text/plain': { schema: Type.String() } },
          },
        },
      },
    },
    async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );
}
