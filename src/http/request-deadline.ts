import type { FastifyInstance, FastifyRequest } from 'fastify';
import { withDeadline, type Holdings } from '../platform/db/deadline-scope.ts';
import { problem, sendProblem } from './problem.ts';
import { PLATFORM_ERRORS } from './error-statuses.ts';
import { DEADLINE_HEADER } from '../platform/remote/service-client.ts';

/** How long after its deadline a request that has not answered is answered for it. */
export const LAST_RESORT_MARGIN_MS = 150;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This route's request deadline, when it differs from the app's (an import streams for minutes). */
    deadlineMs?: number;
  }
}

interface RequestDeadline {
  deadlineAt: number;
  holdings: Holdings;
  timer: NodeJS.Timeout | undefined;
}

const deadlines = new WeakMap<FastifyRequest, RequestDeadline>();

/**
 * Every request runs under a deadline (the route's `config.deadlineMs`, or `defaultMs`) from the moment it
 * arrives: each pooled connection it waits for is given up at that deadline (see withDeadline()). As a last
 * resort, a handler that has not answered `LAST_RESORT_MARGIN_MS` after it is answered 503
 * REQUEST.DEADLINE_EXCEEDED with Retry-After, and every connection the request reserved is given back.
 * @example installRequestDeadline(app, { defaultMs: 2000, now: Date.now });
 */
export function installRequestDeadline(app: FastifyInstance, options: { defaultMs: number; now: () => number }): void {
  app.addHook('onRequest', (request, reply, done) => {
    // A caller's remaining budget (DEADLINE_HEADER, set by the service client) shortens the deadline, never lengthens it.
    const own = request.routeOptions.config?.deadlineMs ?? options.defaultMs;
    const sent = request.headers[DEADLINE_HEADER];
    const budget = typeof sent === 'string' && /^\d{1,9}$/.test(sent) ? Math.max(1, Number(sent)) : undefined;
    const ms = budget === undefined ? own : Math.min(own, budget);
    const entry: RequestDeadline = { deadlineAt: options.now() + ms, holdings: new Set(), timer: undefined };
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      for (const release of [...entry.holdings]) release();
      if (reply.sent || reply.raw.headersSent) return;
      request.log.warn({ deadlineMs: ms }, 'request cut off at its deadline');
      const { status, retryAfterSeconds } = PLATFORM_ERRORS['REQUEST.DEADLINE_EXCEEDED'];
      void sendProblem(
        reply,
        problem(status, 'REQUEST.DEADLINE_EXCEEDED', `no answer within the request's deadline of ${ms} ms`),
        retryAfterSeconds,
      );
    }, ms + LAST_RESORT_MARGIN_MS);
    entry.timer.unref();
    deadlines.set(request, entry);
    done();
  });

  // After the body is parsed, so the handler and everything it awaits run inside the scope.
  app.addHook('preHandler', (request, _reply, done) => {
    const entry = deadlines.get(request);
    if (!entry) return done();
    withDeadline(entry.deadlineAt, () => done(), entry.holdings);
  });

  const finish = (request: FastifyRequest) => {
    const entry = deadlines.get(request);
    if (!entry) return;
    clearTimeout(entry.timer);
    deadlines.delete(request);
  };
  app.addHook('onResponse', async (request) => finish(request));
  app.addHook('onRequestAbort', async (request) => finish(request));
}
