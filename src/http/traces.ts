import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { SpanRecord, TraceStore, TraceSummary } from '../platform/observability/tracing.ts';
import { consoleGuard, givenToken } from './console-access.ts';
import { PLATFORM_ERRORS } from './error-statuses.ts';
import { problem, sendProblem } from './problem.ts';

export const TRACES = '/admin/traces';
const PEER_TIMEOUT_MS = 1000;
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

const TraceParams = Type.Object({ traceId: Type.String({ pattern: '^[0-9a-f]{32}$' }) });
const Token = Type.Object({ token: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false });

/** A trace across the services: every span found, and the services that could not be asked. */
interface Gathered {
  spans: SpanRecord[];
  unreachable: string[];
}

/**
 * The last traces of this process, at `/admin/traces` (a page; `/admin/traces/recent` as JSON), and one trace
 * as a waterfall at `/admin/traces/:traceId`: this process's spans and those of the services it calls (`peers`,
 * each asked at `/admin/traces/:traceId/spans`, which answers this process's own). Access as the dashboard's.
 * Without a store (OTEL_SDK_DISABLED=true) the pages say tracing is off.
 */
export function tracesRoutes(deps: {
  store: TraceStore | undefined;
  /** Base URLs of the services this one calls. */
  peers: readonly string[];
  open: boolean;
  token: string | undefined;
}) {
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    const guard = consoleGuard({ ...deps, what: 'the trace pages' });
    const off = (reply: FastifyReply) =>
      sendProblem(
        reply,
        problem(PLATFORM_ERRORS['TRACES.OFF'].status, 'TRACES.OFF', 'tracing is off here (OTEL_SDK_DISABLED=true)'),
      );
    const schema = { tags: ['admin'], querystring: Token };

    app.get(TRACES, { onRequest: guard, schema: { ...schema, hide: true } }, async (request, reply) => {
      if (!deps.store) return off(reply);
      const token = queryToken(request);
      return page(reply, 'Traces', listBody(deps.store.recent(100), token));
    });

    app.get(`${TRACES}/recent`, { onRequest: guard, schema }, async (_request, reply) => {
      if (!deps.store) return off(reply);
      return { traces: deps.store.recent(100) };
    });

    app.get(
      `${TRACES}/:traceId/spans`,
      { onRequest: guard, schema: { ...schema, params: TraceParams } },
      async (request, reply) => {
        if (!deps.store) return off(reply);
        return { spans: deps.store.spans(request.params.traceId) };
      },
    );

    app.get(
      `${TRACES}/:traceId`,
      { onRequest: guard, config: { deadlineMs: PEER_TIMEOUT_MS * 3 }, schema: { ...schema, params: TraceParams } },
      async (request, reply) => {
        if (!deps.store) return off(reply);
        const { traceId } = request.params;
        const gathered = await gather(traceId, deps.store, deps.peers, givenToken(request)?.value);
        if (gathered.spans.length === 0) {
          return sendProblem(
            reply,
            problem(
              PLATFORM_ERRORS['TRACE.NOT_FOUND'].status,
              'TRACE.NOT_FOUND',
              `no span of trace ${traceId} is kept here`,
            ),
          );
        }
        if ((request.headers.accept ?? '').includes('application/json')) return gathered;
        return page(reply, `Trace ${traceId}`, waterfallBody(traceId, gathered, queryToken(request)));
      },
    );
  };
}

function queryToken(request: FastifyRequest): string | undefined {
  const given = givenToken(request);
  return given?.inQuery ? given.value : undefined;
}

async function gather(
  traceId: string,
  store: TraceStore,
  peers: readonly string[],
  token: string | undefined,
): Promise<Gathered> {
  const own = store.spans(traceId);
  const unreachable: string[] = [];
  const asked = await Promise.all(
    peers.map(async (peer) => {
      try {
        const answer = await fetch(`${peer}${TRACES}/${traceId}/spans`, {
          headers: token ? { authorization: `Bearer ${token}` } : {},
          signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
        });
        if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
        return ((await answer.json()) as { spans: SpanRecord[] }).spans;
      } catch {
        unreachable.push(peer);
        return [];
      }
    }),
  );
  const seen = new Set<string>();
  const spans = [...own, ...asked.flat()].filter((s) => !seen.has(s.spanId) && seen.add(s.spanId));
  return { spans: spans.sort((a, b) => a.startMs - b.startMs), unreachable };
}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const withToken = (path: string, token: string | undefined) =>
  token ? `${path}?token=${encodeURIComponent(token)}` : path;

const ms = (value: number) => (value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0));

function page(reply: FastifyReply, title: string, body: string) {
  return reply
    .header('cache-control', 'no-store')
    .header('content-security-policy', PAGE_CSP)
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .type('text/html; charset=utf-8').send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)} · stratum</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2430; }
h1 { font-size: 1.25rem; } table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.lane { position: relative; height: 18px; min-width: 320px; background: #f4f6f8; }
.bar { position: absolute; top: 2px; height: 14px; border-radius: 2px; min-width: 2px; }
.error { outline: 2px solid #c62828; } .event { color: #6b7480; font-size: 12px; }
.svc { white-space: nowrap; } .note { color: #6b7480; } a { color: #1f5fbf; }
</style></head><body>${body}</body></html>`);
}

function listBody(traces: TraceSummary[], token: string | undefined): string {
  const rows = traces
    .map(
      (t) => `<tr><td><a href="${escape(withToken(`${TRACES}/${t.traceId}`, token))}">${escape(t.name)}</a></td>
<td class="svc">${escape(t.service)}</td><td>${new Date(t.startMs).toISOString()}</td>
<td class="num">${ms(t.durationMs)} ms</td><td class="num">${t.spans}</td><td class="num">${t.errors}</td></tr>`,
    )
    .join('\n');
  return `<h1>Traces</h1><p class="note">The last traces this process took part in, newest first; each opens as a
waterfall across the services it called.</p>
<table><thead><tr><th>first span here</th><th>service</th><th>started</th><th>took</th><th>spans</th><th>failed</th></tr></thead>
<tbody>${rows || '<tr><td colspan="6">no trace yet</td></tr>'}</tbody></table>`;
}

const PALETTE = ['#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];

function waterfallBody(traceId: string, gathered: Gathered, token: string | undefined): string {
  const { spans } = gathered;
  const t0 = Math.min(...spans.map((s) => s.startMs));
  const t1 = Math.max(...spans.map((s) => s.startMs + s.durationMs));
  const total = Math.max(t1 - t0, 0.001);
  const services = [...new Set(spans.map((s) => s.service))];
  const color = (service: string) => PALETTE[services.indexOf(service) % PALETTE.length]!;
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | undefined, SpanRecord[]>();
  for (const span of spans) {
    const parent = span.parentSpanId && ids.has(span.parentSpanId) ? span.parentSpanId : undefined;
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const rows: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const span of children.get(parent) ?? []) {
      const left = ((span.startMs - t0) / total) * 100;
      const width = Math.max((span.durationMs / total) * 100, 0.2);
      const events = span.events
        .map((e) => {
          const detail = Object.entries(e.attributes)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(' ');
          return `<div class="event">+${ms(e.atMs - span.startMs)} ms ${escape(e.name)} ${escape(detail)}</div>`;
        })
        .join('');
      rows.push(`<tr data-span="${span.spanId}" data-parent="${span.parentSpanId ?? ''}">
<td style="padding-left:${8 + depth * 16}px">${escape(span.name)}${span.status === 'error' ? ` <strong>(${escape(span.statusMessage ?? 'failed')})</strong>` : ''}${events}</td>
<td class="svc">${escape(span.service)}${span.instance ? ` · ${escape(span.instance)}` : ''}</td>
<td class="num">${ms(span.durationMs)} ms</td>
<td><div class="lane"><div class="bar${span.status === 'error' ? ' error' : ''}" style="left:${left.toFixed(2)}%;width:${width.toFixed(2)}%;background:${color(span.service)}"></div></div></td></tr>`);
      walk(span.spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  const missing = gathered.unreachable.length
    ? `<p class="note">Not reached for their spans: ${gathered.unreachable.map(escape).join(', ')}.</p>`
    : '';
  return `<h1>Trace ${escape(traceId)}</h1>
<p class="note"><a href="${escape(withToken(TRACES, token))}">all traces</a> · ${spans.length} spans from
${services.map(escape).join(', ')} · ${ms(total)} ms</p>${missing}
<table><thead><tr><th>span</th><th>service</th><th>took</th><th style="width:45%">when</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}
