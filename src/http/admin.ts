import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { DeadLetterStore } from '../platform/messaging/broker.ts';
import { problem, sendProblem } from './problem.ts';
import { PLATFORM_ERRORS } from './error-statuses.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** True when the request carries `Authorization: Bearer <token>`; compared in constant time. */
function authorized(request: FastifyRequest, token: string): boolean {
  const header = request.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7) : '';
  // Equal-length digests: the comparison takes the same time whatever the given token is.
  return timingSafeEqual(digest(given), digest(token));
}

const LetterParams = Type.Object({
  group: Type.String({ pattern: '^[a-zA-Z0-9._-]{1,100}$' }),
  id: Type.String({ minLength: 1, maxLength: 200 }),
});
const ListQuery = Type.Object(
  {
    group: Type.String({ pattern: '^[a-zA-Z0-9._-]{1,100}$' }),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  },
  { additionalProperties: false },
);

/**
 * /admin routes: dead letters of a consumer group (list, show, replay, drop). Without ADMIN_TOKEN they do not
 * exist (404); a wrong or missing token is a 401.
 */
export function adminRoutes(deps: { token: string | undefined; deadLetters: DeadLetterStore }) {
  return (root: FastifyInstance): void => {
    const token = deps.token;
    if (!token) return;
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    const guard = async (request: FastifyRequest, reply: FastifyReply) => {
      if (!authorized(request, token)) {
        reply.header('www-authenticate', 'Bearer');
        return sendProblem(
          reply,
          problem(
            PLATFORM_ERRORS['AUTH.UNAUTHORIZED'].status,
            'AUTH.UNAUTHORIZED',
            'send Authorization: Bearer <ADMIN_TOKEN>',
          ),
        );
      }
    };
    const notFound = (reply: FastifyReply, group: string, id: string) =>
      sendProblem(
        reply,
        problem(PLATFORM_ERRORS['DLQ.NOT_FOUND'].status, 'DLQ.NOT_FOUND', `no dead letter ${id} in group ${group}`),
      );

    app.get(
      '/admin/dlq',
      { onRequest: guard, schema: { tags: ['admin'], querystring: ListQuery } },
      async (request) => {
        const limit = Math.min(1000, Math.max(1, Number(request.query.limit ?? 100)));
        return deps.deadLetters.list(request.query.group, limit);
      },
    );
    app.get(
      '/admin/dlq/:group/:id',
      { onRequest: guard, schema: { tags: ['admin'], params: LetterParams } },
      async (request, reply) => {
        const letter = await deps.deadLetters.get(request.params.group, request.params.id);
        return letter ?? notFound(reply, request.params.group, request.params.id);
      },
    );
    app.post(
      '/admin/dlq/:group/:id/replay',
      { onRequest: guard, schema: { tags: ['admin'], params: LetterParams } },
      async (request, reply) => {
        if (!(await deps.deadLetters.replay(request.params.group, request.params.id)))
          return notFound(reply, request.params.group, request.params.id);
        return { replayed: request.params.id };
      },
    );
    app.delete(
      '/admin/dlq/:group/:id',
      { onRequest: guard, schema: { tags: ['admin'], params: LetterParams } },
      async (request, reply) => {
        if (!(await deps.deadLetters.drop(request.params.group, request.params.id)))
          return notFound(reply, request.params.group, request.params.id);
        return reply.code(204).send(null);
      },
    );
  };
}
