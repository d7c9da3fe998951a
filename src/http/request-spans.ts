import type { FastifyInstance, FastifyRequest } from 'fastify';
import { beginSpan, failSpan, SpanKind, type Span } from '../platform/observability/tracing.ts';
import { problemCodeOf } from './problem.ts';

/** Paths whose requests make no trace: probes, scrapes and the console would crowd out the requests of users. */
const UNTRACED = /^\/(?:healthz|readyz|metrics|dashboard|admin|docs)(?:[/?]|$)/;

interface RequestSpan {
  span: Span;
  run: <T>(fn: () => T) => T;
}

const spans = new WeakMap<FastifyRequest, RequestSpan>();

/**
 * A server span per request (`GET /accounts/:id`), continuing the caller's trace when it sends `traceparent`;
 * the handler and everything it awaits run inside it, so transactions, statements and outgoing calls become its
 * children. Status 5xx marks it failed.
 */
export function installRequestSpans(app: FastifyInstance): void {
  app.addHook('onRequest', (request, _reply, done) => {
    if (UNTRACED.test(request.url)) return done();
    const route = request.routeOptions.url;
    const started = beginSpan(`${request.method} ${route ?? 'unmatched'}`, {
      kind: SpanKind.SERVER,
      parentHeaders: request.headers,
      attributes: {
        'http.request.method': request.method,
        'url.path': request.url.split('?')[0]!,
        ...(route ? { 'http.route': route } : {}),
      },
    });
    spans.set(request, started);
    done();
  });

  // After the body is parsed, so the handler and everything it awaits run inside the span.
  app.addHook('preHandler', (request, _reply, done) => {
    const entry = spans.get(request);
    if (!entry) return done();
    entry.run(() => done());
  });

  app.addHook('onError', async (request, _reply, error) => {
    const entry = spans.get(request);
    if (entry) entry.span.recordException({ name: error.name, message: error.message });
  });

  app.addHook('onResponse', async (request, reply) => {
    const entry = spans.get(request);
    if (!entry) return;
    spans.delete(request);
    entry.span.setAttribute('http.response.status_code', reply.statusCode);
    if (reply.statusCode >= 500) failSpan(entry.span, { code: problemCodeOf(reply) ?? `HTTP_${reply.statusCode}` });
    entry.span.end();
  });

  app.addHook('onRequestAbort', async (request) => {
    const entry = spans.get(request);
    if (!entry) return;
    spans.delete(request);
    entry.span.addEvent('aborted by the client');
    entry.span.end();
  });
}
