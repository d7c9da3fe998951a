import { percentile } from '../support/stats.ts';
import type { LoadRun } from './load.ts';
import type { Target, TargetKey } from './targets.ts';

/** Everything measured for one target over all rounds. */
export interface TargetResult {
  target: Target;
  runs: LoadRun[];
  /** Per run: CPU of the load generator and of the server process in percent of one core, of the machine in percent of all. */
  cpu: Array<{ self: number; other: number | undefined; machine: number }>;
  /** Account views read from PostgreSQL during the timed runs; undefined for the bare route. */
  loads: number | undefined;
}

interface Summary {
  reqPerSec: number;
  responses: number;
  p50: number | undefined;
  p99: number | undefined;
  errors: number;
  non2xx: Map<number, number>;
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
  };
}

/** The table, notes, warnings for failed requests, and the three ratio lines last. */
export function formatResults(results: readonly TargetResult[]): string {
  const summaries = new Map(results.map((r) => [r.target.key, summarize(r)] as const));
  const get = (key: TargetKey) => summaries.get(key)!;
  const rows = results.map((r) => {
    const s = get(r.target.key);
    return `| ${r.target.label} | ${int(s.reqPerSec)} | ${ms(s.p50)} | ${ms(s.p99)} | ${failures(s)} |`;
  });
  const per = (f: (r: TargetResult) => string) => results.map((r) => `${r.target.key} ${f(r)}`).join('; ');
  const notes = [
    `req/s per round: ${per((r) => r.runs.map((run) => int(run.responses / run.seconds)).join(', '))}`,
    `bytes per 2xx response, headers included: ${per((r) => int(sum(r.runs.map((x) => x.bytes)) / Math.max(1, sum(r.runs.map((x) => x.latenciesMs.length)))))}`,
    `account views read from PostgreSQL during the timed runs: ${results
      .filter((r) => r.loads !== undefined)
      .map((r) => `${r.target.key} ${int(r.loads!)} for ${int(get(r.target.key).responses)} responses`)
      .join('; ')}` +
      ' (a run stops with up to 100 requests in flight: the server reads for them, the client no longer counts their answers)',
    `CPU per run, load generator / server process in % of one core, machine in % of all: ${per((r) =>
      r.cpu.map((c) => `${int(c.self)}/${c.other === undefined ? '?' : int(c.other)}/${int(c.machine)}`).join(', '),
    )}`,
  ];
  const warnings = results
    .filter((r) => failed(get(r.target.key)))
    .map(
      (r) =>
        `**WARNING: ${r.target.key} had ${failures(get(r.target.key))} errors / non-2xx answers${
          r.target.key === 'cached' ? '; the cached throughput is NOT that of cached reads' : ''
        }; its numbers are not comparable.**`,
    );
  const ratio = (a: TargetKey, b: TargetKey) => get(a).reqPerSec / get(b).reqPerSec;
  return [
    '| target | req/s | p50 ms | p99 ms | errors / non-2xx |',
    '|---|--:|--:|--:|--:|',
    ...rows,
    '',
    ...notes.flatMap((n) => [n, '']),
    ...warnings.flatMap((w) => [w, '']),
    `ratio cached/bare throughput: ${ratio('cached', 'bare').toFixed(2)}x (target >= 0.6x)`,
    '',
    `ratio uncached/bare throughput: ${ratio('uncached', 'bare').toFixed(2)}x`,
    '',
    `ratio cached/uncached throughput: ${ratio('cached', 'uncached').toFixed(1)}x`,
    '',
    `ratio cached throughput, one dashboard open / none: ${ratio('cached+dashboard', 'cached').toFixed(3)}x (target: within 5%)`,
    '',
    `ratio uncached throughput, one dashboard open / none: ${ratio('uncached+dashboard', 'uncached').toFixed(3)}x (target: within 5%)`,
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
