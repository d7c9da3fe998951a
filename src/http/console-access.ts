import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PLATFORM_ERRORS } from './error-statuses.ts';
import { problem, sendProblem } from './problem.ts';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** The token a request gives: `Authorization: Bearer …` or `?token=…`. */
export function givenToken(request: FastifyRequest): { value: string; inQuery: boolean } | undefined {
  const header = request.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return { value: header.slice(7), inQuery: false };
  const query = (request.query as { token?: unknown } | undefined)?.token;
  return typeof query === 'string' ? { value: query, inQuery: true } : undefined;
}

/**
 * The console's access rule as an onRequest hook: `open` (the service listens on loopback only) lets anyone who
 * can reach it in; otherwise the request needs ADMIN_TOKEN (Bearer or `?token=`), compared in constant time, and
 * is answered 401 AUTH.UNAUTHORIZED without it, also when no token is configured. `what` names the pages in
 * that answer (`the dashboard`).
 */
export function consoleGuard(access: { open: boolean; token: string | undefined; what: string }) {
  const token = access.token || undefined;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (access.open) return;
    const given = givenToken(request);
    // Equal-length digests: the comparison takes the same time whatever the given token is.
    if (token && given && timingSafeEqual(digest(given.value), digest(token))) return;
    reply.header('www-authenticate', 'Bearer');
    return sendProblem(
      reply,
      problem(
        PLATFORM_ERRORS['AUTH.UNAUTHORIZED'].status,
        'AUTH.UNAUTHORIZED',
        token
          ? 'send Authorization: Bearer <ADMIN_TOKEN>, or ?token=<ADMIN_TOKEN>'
          : `${access.what} is served without a token on loopback only; elsewhere it needs ADMIN_TOKEN to be set`,
      ),
    );
  };
}
