import { readCacheLoads, readRouteAnswers } from './cache-loads.ts';
import { HOT_SET, randomAccountPath, SEEDED_ACCOUNTS } from './dataset.ts';
import type { BenchDeployments } from './deployments.ts';

export type TargetKey =
  | 'bare'
  | 'cached'
  | 'uncached'
  | 'cached+dashboard'
  | 'uncached+dashboard'
  | 'cached-tracing-off'
  | 'split'
  | 'split-tracing-off';

/** One server under load and the ids it is asked for. */
export interface Target {
  key: TargetKey;
  /** The row label in the report. */
  label: string;
  url: string;
  nextPath: () => string;
  /** A stratum deployment (it has /metrics and real accounts, and its answers must be complete). */
  stratum: boolean;
  /** The split deployment: its answers must name the gateway, accounts-data, images and quotes instances. */
  split?: boolean;
  /** The processes that serve it: their CPU is measured over each run. */
  serverPids: readonly number[];
  /** How many account reads reached PostgreSQL so far (a counter of its /metrics); undefined for the bare route. */
  readLoads?: () => Promise<number>;
  /** Runs per benchmark: one per round. */
  samples: number;
  /** A dashboard is open on the instance while it runs (its page polling once a second). */
  dashboard?: boolean;
}

/** The targets in their first-round order; every one runs once per round. */
export function defineTargets(deployments: BenchDeployments, rounds: number): Target[] {
  const url = (port: number | undefined) => `http://127.0.0.1:${port}`;
  const n = (count: number) => count.toLocaleString('en-US');
  const { oneProcess, tracingOff, split, splitTracingOff } = deployments;
  const cached = { stratum: true, samples: rounds, nextPath: randomAccountPath(HOT_SET) };
  const uncached = { stratum: true, samples: rounds, nextPath: randomAccountPath(SEEDED_ACCOUNTS) };
  const inOneProcess = (port: number | undefined, pid: number) => ({
    url: url(port),
    serverPids: [pid],
    readLoads: () => readCacheLoads(url(port)),
  });
  const splitTarget = (deployment: NonNullable<BenchDeployments['split']>) => ({
    ...uncached,
    split: true,
    url: deployment.gateway,
    serverPids: deployment.pids,
    readLoads: () => readRouteAnswers(deployment.data, '/internal/accounts/:id'),
  });
  const targets: Target[] = [
    {
      key: 'bare',
      label: 'bare Fastify route, constant object',
      url: url(oneProcess.ports.bare),
      nextPath: randomAccountPath(SEEDED_ACCOUNTS),
      stratum: false,
      serverPids: [oneProcess.pid],
      samples: rounds,
    },
    {
      key: 'cached',
      label: `stratum cached (default cache, ${n(HOT_SET)} hot ids)`,
      ...cached,
      ...inOneProcess(oneProcess.ports.cached, oneProcess.pid),
    },
    {
      key: 'uncached',
      label: `stratum uncached (CACHE_TTL_MS=0, ${n(SEEDED_ACCOUNTS)} ids)`,
      ...uncached,
      ...inOneProcess(oneProcess.ports.uncached, oneProcess.pid),
    },
    {
      key: 'cached+dashboard',
      label: 'stratum cached, one dashboard open',
      ...cached,
      ...inOneProcess(oneProcess.ports.cached, oneProcess.pid),
      dashboard: true,
    },
    {
      key: 'uncached+dashboard',
      label: 'stratum uncached, one dashboard open',
      ...uncached,
      ...inOneProcess(oneProcess.ports.uncached, oneProcess.pid),
      dashboard: true,
    },
    {
      key: 'cached-tracing-off',
      label: 'stratum cached, OTEL_SDK_DISABLED=true (a server process of its own)',
      ...cached,
      ...inOneProcess(tracingOff.ports.cached, tracingOff.pid),
    },
  ];
  if (split)
    targets.push({
      key: 'split',
      label: `split: gateway, accounts-data, images, quotes ×2 (5 processes, no cache, ${n(SEEDED_ACCOUNTS)} ids)`,
      ...splitTarget(split),
    });
  if (splitTracingOff)
    targets.push({
      key: 'split-tracing-off',
      label: 'split, OTEL_SDK_DISABLED=true in all 5 processes',
      ...splitTarget(splitTracingOff),
    });
  return targets;
}

interface View {
  name?: unknown;
  events?: unknown;
  quote?: unknown;
  degraded?: unknown;
  servedBy?: Record<string, unknown>;
}

/** What is wrong with an answer of `target`, or undefined when it is a complete account view. */
function problemOf(target: Target, view: View | undefined): string | undefined {
  if (!view || typeof view.name !== 'string' || !Array.isArray(view.events) || view.events.length === 0)
    return 'not an account view with events';
  if (!target.stratum) return undefined;
  // A degraded answer (a part standing in) is cheaper than a complete one: measuring it would flatter the target.
  if (view.degraded !== undefined) return `degraded: ${JSON.stringify(view.degraded)}`;
  const by = view.servedBy ?? {};
  if (typeof view.quote !== 'object' || !by.account || !by.image || !by.quote) return 'a part of the view is missing';
  if (
    target.split &&
    !(
      by.gateway === 'accounts-1' &&
      by.account === 'accounts-data-1' &&
      by.image === 'images-1' &&
      String(by.quote).startsWith('quotes-')
    )
  )
    return 'not composed by the gateway from accounts-data, images and quotes';
  return undefined;
}

/**
 * A few requests per target before any load: each must answer 200 with an account view, and stratum's must be
 * complete (not degraded, every part served; the split's by each of its services), so a broken set-up fails here
 * instead of being measured.
 */
export async function checkTargets(targets: readonly Target[]): Promise<void> {
  for (const target of targets) {
    for (let i = 0; i < 4; i++) {
      const path = target.nextPath();
      const response = await fetch(`${target.url}${path}`);
      const body = await response.text();
      const problem =
        response.status === 200 ? problemOf(target, JSON.parse(body) as View) : `status ${response.status}`;
      if (problem)
        throw new Error(`${target.label}: GET ${path} answered ${response.status} (${problem}) ${body.slice(0, 300)}`);
    }
  }
}
