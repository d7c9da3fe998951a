import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Metrics } from '../../platform/observability/metrics.ts';
import { consoleGuard, givenToken } from '../console-access.ts';
import { problem, sendProblem } from '../problem.ts';
import { DASHBOARD, DASHBOARD_CSP, dashboardPage } from './page.ts';
import { startSampler } from './sampler.ts';
import { createStatusReader, type DashboardSources } from './status.ts';

/** The status (databases, broker) is read again at most this often, and only while someone watches. */
const STATUS_MAX_AGE_MS = 5000;

const require = createRequire(import.meta.url);
const here = (file: string) => new URL(`./client/${file}`, import.meta.url);

/** The files the page loads, served from memory: uPlot from its package, the page's own script and style. */
const ASSETS: Record<string, { type: string; read: () => string }> = {
  'uplot.js': {
    type: 'text/javascript; charset=utf-8',
    read: () => readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
  },
  'uplot.css': {
    type: 'text/css; charset=utf-8',
    read: () => readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  },
  'dashboard.js': { type: 'text/javascript; charset=utf-8', read: () => readFileSync(here('dashboard.js'), 'utf8') },
  'dashboard.css': { type: 'text/css; charset=utf-8', read: () => readFileSync(here('dashboard.css'), 'utf8') },
};

const Token = Type.Optional(Type.String({ maxLength: 1000 }));

export interface Dashboard {
  routes: (app: FastifyInstance) => void;
  /** Stops sampling and closes the dashboard's own connections. */
  close(): Promise<void>;
}

/**
 * The live dashboard at `/dashboard`: a page of charts of the last 15 minutes (requests per route, latency,
 * errors by code, pools, transactions, messaging, cache, cluster, each context's status), updated once a second
 * by polling `/dashboard/api/samples?after=<ms>`. Everything it loads is served here (uPlot included); it only
 * reads. Access as the data browser's: `open` (the service listens on loopback only) serves it to anyone who can
 * reach it; otherwise every path needs the token (Bearer or `?token=`) and answers 401 without it, also when no
 * token is configured.
 * @example const dashboard = createDashboard({ metrics, sources, token: config.adminToken, open: true, browser: '/dashboard/data-browser' });
 */
export function createDashboard(deps: {
  metrics: Metrics;
  sources: DashboardSources;
  token: string | undefined;
  open: boolean;
  /** Where the data browser is, linked from the page. */
  browser: string;
}): Dashboard {
  const token = deps.token || undefined;
  const sampler = startSampler(deps.metrics, { skipRoute: (route) => route.startsWith(DASHBOARD) });
  const status = createStatusReader(deps.sources);
  const assets = new Map<string, string>();

  const routes = (root: FastifyInstance) => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    const guard = consoleGuard({ open: deps.open, token, what: 'the dashboard' });
    const secure = (reply: FastifyReply) =>
      reply
        .header('cache-control', 'no-store')
        .header('content-security-policy', DASHBOARD_CSP)
        .header('referrer-policy', 'no-referrer')
        .header('x-content-type-options', 'nosniff')
        .header('x-frame-options', 'DENY');

    const page = async (request: FastifyRequest, reply: FastifyReply) => {
      const given = deps.open ? undefined : givenToken(request);
      return secure(reply)
        .type('text/html; charset=utf-8')
        .send(dashboardPage({ token: given?.inQuery ? given.value : undefined, browser: deps.browser }));
    };
    const pageSchema = { hide: true, querystring: Type.Object({ token: Token }, { additionalProperties: false }) };
    app.get(DASHBOARD, { onRequest: guard, schema: pageSchema }, page);
    app.get(`${DASHBOARD}/`, { onRequest: guard, schema: pageSchema }, page);

    app.get(
      `${DASHBOARD}/assets/:name`,
      {
        onRequest: guard,
        schema: {
          hide: true,
          params: Type.Object({ name: Type.String({ maxLength: 100 }) }),
          querystring: Type.Object({ token: Token }, { additionalProperties: false }),
        },
      },
      async (request, reply) => {
        const asset = ASSETS[request.params.name];
        if (!asset || !Object.hasOwn(ASSETS, request.params.name))
          return sendProblem(reply, problem(404, 'REQUEST.NOT_FOUND', `no dashboard asset ${request.params.name}`));
        let body = assets.get(request.params.name);
        if (body === undefined) assets.set(request.params.name, (body = asset.read()));
        return secure(reply).type(asset.type).send(body);
      },
    );

    app.get(
      `${DASHBOARD}/api/samples`,
      {
        onRequest: guard,
        config: { deadlineMs: 10_000 },
        schema: {
          hide: true,
          querystring: Type.Object(
            { after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })), token: Token },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) => {
        const read = await status.read(STATUS_MAX_AGE_MS).catch(() => null);
        return secure(reply).send({
          now: Date.now(),
          samples: sampler.since(Number(request.query.after ?? 0)),
          status: read,
        });
      },
    );
  };

  return {
    routes,
    async close() {
      sampler.stop();
      await status.close();
    },
  };
}
