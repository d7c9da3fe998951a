import { HOT_SET, randomAccountPath, SEEDED_ACCOUNTS } from './dataset.ts';
import type { BenchServers } from './spawn-servers.ts';

export type TargetKey = 'bare' | 'cached' | 'uncached' | 'cached+dashboard' | 'uncached+dashboard';

/** One server under load and the ids it is asked for. */
export interface Target {
  key: TargetKey;
  /** The row label in the report. */
  label: string;
  url: string;
  nextPath: () => string;
  /** A stratum instance (it has /metrics and real accounts). */
  stratum: boolean;
  /** Runs per benchmark: one per round. */
  samples: number;
  /** A dashboard is open on the instance while it runs (its page polling once a second). */
  dashboard?: boolean;
}

/** The three targets in their first-round order; every one runs once per round. */
export function defineTargets(ports: BenchServers['ports'], rounds: number): Target[] {
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const n = (count: number) => count.toLocaleString('en-US');
  return [
    {
      key: 'bare',
      label: 'bare Fastify route, constant object',
      url: url(ports.bare),
      nextPath: randomAccountPath(SEEDED_ACCOUNTS),
      stratum: false,
      samples: rounds,
    },
    {
      key: 'cached',
      label: `stratum cached (default cache, ${n(HOT_SET)} hot ids)`,
      url: url(ports.cached),
      nextPath: randomAccountPath(HOT_SET),
      stratum: true,
      samples: rounds,
    },
    {
      key: 'uncached',
      label: `stratum uncached (CACHE_TTL_MS=0, ${n(SEEDED_ACCOUNTS)} ids)`,
      url: url(ports.uncached),
      nextPath: randomAccountPath(SEEDED_ACCOUNTS),
      stratum: true,
      samples: rounds,
    },
    {
      key: 'cached+dashboard',
      label: 'stratum cached, one dashboard open',
      url: url(ports.cached),
      nextPath: randomAccountPath(HOT_SET),
      stratum: true,
      samples: rounds,
      dashboard: true,
    },
    {
      key: 'uncached+dashboard',
      label: 'stratum uncached, one dashboard open',
      url: url(ports.uncached),
      nextPath: randomAccountPath(SEEDED_ACCOUNTS),
      stratum: true,
      samples: rounds,
      dashboard: true,
    },
  ];
}

/**
 * One request per target before any load: each must answer 200 with an account view, and stratum's must
 * be complete (not degraded), so a broken set-up fails here instead of being measured.
 */
export async function checkTargets(targets: readonly Target[]): Promise<void> {
  for (const target of targets) {
    const path = target.nextPath();
    const response = await fetch(`${target.url}${path}`);
    const body = await response.text();
    const view =
      response.status === 200
        ? (JSON.parse(body) as { name?: unknown; events?: unknown; degraded?: unknown })
        : undefined;
    const complete =
      view &&
      typeof view.name === 'string' &&
      Array.isArray(view.events) &&
      view.events.length > 0 &&
      view.degraded === undefined;
    if (!complete) throw new Error(`${target.label}: GET ${path} answered ${response.status} ${body.slice(0, 300)}`);
  }
}
