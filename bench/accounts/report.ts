import { percentile } from '../support/stats.ts';
import type { LoadRun } from './load.ts';
import type { Target, TargetKey } from './targets.ts';

/** Everything measured for one target over all rounds. */
export interface TargetResult {
  target: Target;
  runs: LoadRun[];
  /** Per run: CPU of the load generator and of the server process(es) in percent of one core, of the machine in percent of all. */
  cpu: Array<{ self: number; other: number | undefined; machine: number }>;
  /** Account reads that reached PostgreSQL during the timed runs; undefined for the bare route. */
  loads: number | undefined;
  /** Degraded 2xx answers during the warm-up. */
  warmUpDegraded: number;
}

interface Summary {
  reqPerSec: number;
  responses: number;
  p50: number | undefined;
  p99: number | undefined;
  errors: number;
  non2xx: Map<number, number>;
  degraded: number;
}

/** The mean over rounds: all responses over all seconds; percentiles over every 2xx response of every round. */
function summarize(r: TargetResult): Summary {
  const latencies = r.runs.flatMap((run) => run.latenciesMs);
  const non2xx = new Map<number, number>();
  for (const run of r.runs)
    for (const [status, count] of run.non2xx) non2xx.set(status, (non2xx.get(status) ?? 0) + count);
  const responses = sum(r.runs.map((run) => run.responses));
  return {
    reqPerSec: responses / sum(r.runs.map((run) => run.seconds)),
    responses,
    p50: latencies.length > 0 ? percentile(latencies, 50) : undefined,
    p99: latencies.length > 0 ? percentile(latencies, 99) : undefined,
    errors: sum(r.runs.map((run) => run.errors)),
    non2xx,
    degraded: sum(r.runs.map((run) => run.degraded)),
  };
}

/** The table, notes, warnings for failed or degraded answers, and the ratio lines last. */
export function formatResults(results: readonly TargetResult[]): string {
  const summaries = new Map(results.map((r) => [r.target.key, summarize(r)] as const));
  const get = (key: TargetKey) => summaries.get(key)!;
  const has = (key: TargetKey) => summaries.has(key);
  const rows = results.map((r) => {
    const s = get(r.target.key);
    return `| ${r.target.label} | ${int(s.reqPerSec)} | ${ms(s.p50)} | ${ms(s.p99)} | ${failures(s)} |`;
  });
  const per = (f: (r: TargetResult) => string) => results.map((r) => `${r.target.key} ${f(r)}`).join('; ');
  const stratum = results.filter((r) => r.loads !== undefined);
  const notes = [
    `req/s per round: ${per((r) => r.runs.map((run) => int(run.responses / run.seconds)).join(', '))}`,
    `bytes per 2xx response, headers included: ${per((r) => int(sum(r.runs.map((x) => x.bytes)) / Math.max(1, sum(r.runs.map((x) => x.latenciesMs.length)))))}`,
    `account reads that reached PostgreSQL during the timed runs (one process: views loaded on a cache miss; split: accounts-data's 200 answers to /internal/accounts/:id): ${stratum
      .map((r) => `${r.target.key} ${int(r.loads!)} for ${int(get(r.target.key).responses)} responses`)
      .join('; ')}` +
      ' (a run stops with up to 100 requests in flight: the server reads for them, the client no longer counts their answers)',
    `degraded 2xx answers (a part standing in: cheaper than a complete one), warm-up / timed runs: ${stratum
      .map((r) => `${r.target.key} ${int(r.warmUpDegraded)} / ${int(get(r.target.key).degraded)}`)
      .join('; ')}`,
    `CPU per run, load generator / server process(es) (the split: its 5 added up) in % of one core, machine in % of all: ${per(
      (r) =>
        r.cpu.map((c) => `${int(c.self)}/${c.other === undefined ? '?' : int(c.other)}/${int(c.machine)}`).join(', '),
    )}`,
  ];
  const warnings = results.flatMap((r) => {
    const s = get(r.target.key);
    return [
      ...(failed(s)
        ? [
            `**WARNING: ${r.target.key} had ${failures(s)} errors / non-2xx answers${
              r.target.key === 'cached' ? '; the cached throughput is NOT that of cached reads' : ''
            }; its numbers are not comparable.**`,
          ]
        : []),
      ...(s.degraded > 0
        ? [`**WARNING: ${r.target.key} gave ${int(s.degraded)} degraded answers; its numbers are not comparable.**`]
        : []),
    ];
  });
  const comparable = (...keys: TargetKey[]) =>
    keys.some((k) => failed(get(k)) || get(k).degraded > 0) ? ' (NOT comparable: see the warnings)' : '';
  const ratio = (a: TargetKey, b: TargetKey) => get(a).reqPerSec / get(b).reqPerSec;
  const ratios = [
    `ratio cached/bare throughput: ${ratio('cached', 'bare').toFixed(2)}x (target >= 0.6x)`,
    `ratio uncached/bare throughput: ${ratio('uncached', 'bare').toFixed(2)}x`,
    `ratio cached/uncached throughput: ${ratio('cached', 'uncached').toFixed(1)}x`,
    `ratio cached throughput, one dashboard open / none: ${ratio('cached+dashboard', 'cached').toFixed(3)}x (target: within 5%)`,
    `ratio uncached throughput, one dashboard open / none: ${ratio('uncached+dashboard', 'uncached').toFixed(3)}x (target: within 5%)`,
    ...(has('split')
      ? [
          `ratio split/one-process throughput: ${ratio('split', 'uncached').toFixed(2)}x (baseline: stratum uncached in one process; no process of the split caches a view)${comparable('split', 'uncached')}`,
          `ratio split/one-process p99: ${(get('split').p99! / get('uncached').p99!).toFixed(2)}x (the same baseline)${comparable('split', 'uncached')}`,
        ]
      : []),
    `ratio tracing on/off throughput: ${ratio('cached', 'cached-tracing-off').toFixed(3)}x (stratum cached, one process)${comparable('cached', 'cached-tracing-off')}`,
    ...(has('split-tracing-off')
      ? [
          `ratio tracing on/off throughput: ${ratio('split', 'split-tracing-off').toFixed(3)}x (split)${comparable('split', 'split-tracing-off')}`,
        ]
      : []),
  ];
  return [
    '| target | req/s | p50 ms | p99 ms | errors / non-2xx |',
    '|---|--:|--:|--:|--:|',
    ...rows,
    '',
    ...notes.flatMap((n) => [n, '']),
    ...warnings.flatMap((w) => [w, '']),
    ...ratios.flatMap((line, i) => (i === 0 ? [line] : ['', line])),
  ].join('\n');
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const int = (v: number) => Math.round(v).toLocaleString('en-US');
const ms = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const failed = (s: Summary) => s.errors > 0 || s.non2xx.size > 0;

function failures(s: Summary): string {
  const statuses = [...s.non2xx].sort(([a], [b]) => a - b).map(([status, count]) => `${status}: ${int(count)}`);
  const non2xx = sum([...s.non2xx.values()]);
  return `${int(s.errors)} / ${int(non2xx)}${statuses.length > 0 ? ` (${statuses.join(', ')})` : ''}`;
}
