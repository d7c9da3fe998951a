import type { LoadtestOptions } from './parse-args.ts';
import { summarizeLatencies, type LatencySummary } from './percentiles.ts';
import { isCleanReadBack, type ReadBackResult } from './read-back.ts';
import type { FailureGroup, Tally } from './tally.ts';

interface Counts {
  scheduled: number;
  sent: number;
  completed: number;
  ok: number;
  failed: number;
  degraded: number;
}

/** What `loadtest` prints, and writes with --json. Latencies in ms, from each request's scheduled start. */
export interface LoadtestReport {
  scenario: string;
  url: string;
  rate: number;
  rampS: number;
  durationS: number;
  seed: number;
  accounts: number;
  customers: number;
  elapsedS: number;
  totals: Counts & { latencyMs: LatencySummary };
  kinds: Record<string, Counts & { latencyMs: LatencySummary }>;
  failures: FailureGroup[];
  readBack: ReadBackResult | null;
}

type KindSummary = Counts & { latencyMs: LatencySummary };

/** Counts and latency percentiles of each kind of a tally, and of all of them together. */
export function summarizeKinds(tally: Tally): { kinds: Record<string, KindSummary>; totals: KindSummary } {
  const kinds: Record<string, KindSummary> = {};
  const totals: Counts = { scheduled: 0, sent: 0, completed: 0, ok: 0, failed: 0, degraded: 0 };
  const all: number[] = [];
  for (const [name, k] of Object.entries(tally.kinds)) {
    const { latencies, ...counts } = k;
    kinds[name] = { ...counts, latencyMs: summarizeLatencies(latencies) };
    for (const key of Object.keys(totals) as (keyof Counts)[]) totals[key] += counts[key];
    for (const l of latencies) all.push(l);
  }
  return { kinds, totals: { ...totals, latencyMs: summarizeLatencies(all) } };
}

/** Assembles the report; `elapsedS` is passed in so this stays a pure function. */
export function buildReport(
  options: LoadtestOptions,
  tally: Tally,
  readBack: ReadBackResult | null,
  elapsedS: number,
): LoadtestReport {
  const { kinds, totals } = summarizeKinds(tally);
  return {
    scenario: options.scenario,
    url: options.url.toString(),
    rate: options.rate,
    rampS: options.ramp,
    durationS: options.duration,
    seed: options.seed,
    accounts: options.accounts,
    customers: options.customers,
    elapsedS: Math.round(elapsedS * 10) / 10,
    totals,
    kinds,
    failures: [...tally.failures.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code)),
    readBack: readBack && sortReadBack(readBack),
  };
}

// Ids in order, numerically when they are numbers (order ids), so a report reads the same every time.
const byId = (a: { id: string }, b: { id: string }) => compareIds(a.id, b.id);
const compareIds = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

function sortReadBack(readBack: ReadBackResult): ReadBackResult {
  return {
    ...readBack,
    lost: [...readBack.lost].sort(compareIds),
    ...(readBack.wrongState ? { wrongState: [...readBack.wrongState].sort(byId) } : {}),
    ...(readBack.duplicated ? { duplicated: [...readBack.duplicated].sort(byId) } : {}),
    unverified: [...readBack.unverified].sort(byId),
  };
}

/** True when every request succeeded and everything created was read back as the run left it. */
export function isCleanRun(report: LoadtestReport): boolean {
  return report.totals.failed === 0 && (report.readBack === null || isCleanReadBack(report.readBack));
}

function table(rows: (string | number)[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => String(r[c] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]!) : String(cell).padStart(widths[c]!)))
      .join('  ')
      .trimEnd(),
  );
}

const ms = (v: number | null) => (v === null ? '-' : v.toFixed(1));
const SHOWN_IDS = 10;

/** The report's first line: what ran. */
export function formatTitle(report: LoadtestReport): string {
  return `${report.scenario} on ${report.url}: ${report.rate} req/s, ramp ${report.rampS} s, duration ${report.durationS} s, seed ${report.seed}, ${report.elapsedS} s elapsed`;
}

/** The first lines of the report: what ran, and how many requests came to what. */
export function formatHeader(report: LoadtestReport): string[] {
  const t = report.totals;
  return [
    formatTitle(report),
    `scheduled ${t.scheduled}, sent ${t.sent}, completed ${t.completed}, ok ${t.ok}, failed ${t.failed}${t.degraded ? `, degraded reads ${t.degraded}` : ''}`,
    '',
  ];
}

/** The report as short tables for a terminal. */
export function formatReport(report: LoadtestReport): string[] {
  const t = report.totals;
  const lines = formatHeader(report);
  const kindRows = Object.entries(report.kinds).map(([name, k]) => [
    name,
    k.scheduled,
    k.sent,
    k.ok,
    k.failed,
    ms(k.latencyMs.p50),
    ms(k.latencyMs.p90),
    ms(k.latencyMs.p99),
    ms(k.latencyMs.max),
  ]);
  lines.push(
    ...table([
      ['kind', 'scheduled', 'sent', 'ok', 'failed', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
      ...kindRows,
      [
        'all',
        t.scheduled,
        t.sent,
        t.ok,
        t.failed,
        ms(t.latencyMs.p50),
        ms(t.latencyMs.p90),
        ms(t.latencyMs.p99),
        ms(t.latencyMs.max),
      ],
    ]),
  );
  if (report.failures.length > 0) {
    lines.push('');
    lines.push(
      ...table([
        ['failure', 'status', 'count', 'by kind'],
        ...report.failures.map((f) => [
          f.code,
          f.status ?? '-',
          f.count,
          Object.entries(f.byKind)
            .map(([k, n]) => `${k} ${n}`)
            .join(', '),
        ]),
      ]),
    );
  }
  const rb = report.readBack;
  if (rb) {
    lines.push('');
    lines.push(...formatReadBack(rb));
  }
  return lines;
}

function listed<T>(label: string, entries: readonly T[], show: (entry: T) => string): string[] {
  if (entries.length === 0) return [];
  const more = entries.length > SHOWN_IDS ? `, … (${entries.length - SHOWN_IDS} more)` : '';
  return [`${label}: ${entries.slice(0, SHOWN_IDS).map(show).join(', ')}${more}`];
}

function formatReadBack(rb: ReadBackResult): string[] {
  // A read-back that checks states and duplicates says so in its counts; one that does not, does not claim zero.
  const found = rb.wrongState || rb.duplicated ? 'found once as left' : 'found';
  const counts = [
    `${rb.verified} ${found}`,
    `${rb.lost.length} lost`,
    ...(rb.wrongState ? [`${rb.wrongState.length} in a wrong state`] : []),
    ...(rb.duplicated ? [`${rb.duplicated.length} duplicated`] : []),
    `${rb.unverified.length} unverified`,
  ];
  return [
    `read back ${rb.created} created ${rb.noun}: ${counts.join(', ')}`,
    ...listed('lost', rb.lost, (id) => id),
    ...listed('wrong state', rb.wrongState ?? [], (w) => `${w.id} is ${w.found}, expected ${w.expected} (${w.where})`),
    ...listed('duplicated', rb.duplicated ?? [], (d) => `${d.id} listed ${d.count} times`),
    ...listed('unverified', rb.unverified, (u) => `${u.id} (${u.code})`),
  ];
}
