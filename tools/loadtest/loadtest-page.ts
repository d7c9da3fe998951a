import type { ReportCard, ReportPage, ReportTable } from './html-report.ts';
import type { LatencySummary } from './percentiles.ts';
import type { ReadBackResult } from './read-back.ts';
import { formatTitle, type LoadtestReport } from './report.ts';
import type { FailureGroup } from './tally.ts';
import type { Timeline } from './timeline.ts';

interface KindRow {
  scheduled: number;
  sent: number;
  completed: number;
  ok: number;
  failed: number;
  degraded: number;
  latencyMs: LatencySummary;
}

/** Per kind: counts and percentiles, then all kinds together. */
export function kindsTable(kinds: Record<string, KindRow>, totals: KindRow, title = 'Requests by kind'): ReportTable {
  const row = (name: string, k: KindRow) => [
    name,
    k.scheduled,
    k.sent,
    k.completed,
    k.ok,
    k.failed,
    k.degraded,
    k.latencyMs.p50,
    k.latencyMs.p90,
    k.latencyMs.p99,
    k.latencyMs.max,
  ];
  return {
    title,
    columns: [
      'kind',
      'scheduled',
      'sent',
      'answered',
      'ok',
      'failed',
      'degraded',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'max ms',
    ],
    rows: [...Object.entries(kinds).map(([name, k]) => row(name, k)), row('all', totals)],
    note: 'Latencies run from each request’s scheduled start to the end of its answer.',
  };
}

/** Per kind, how many answers of each status (or client code, when none came). */
export function statusesTable(byKind: Record<string, Record<string, number>>): ReportTable {
  const keys = [...new Set(Object.values(byKind).flatMap((s) => Object.keys(s)))];
  const order = (k: string) => (Number.isInteger(Number(k)) ? Number(k) : 1_000);
  keys.sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  return {
    title: 'Status codes by kind',
    columns: ['kind', ...keys],
    rows: Object.entries(byKind).map(([kind, s]) => [kind, ...keys.map((k) => s[k] ?? 0)]),
  };
}

export function failuresTable(failures: readonly FailureGroup[]): ReportTable {
  return {
    title: 'Failures by code',
    columns: ['code', 'status', 'count', 'by kind'],
    rows: failures.map((f) => [
      f.code,
      f.status,
      f.count,
      Object.entries(f.byKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(', '),
    ]),
  };
}

const SHOWN = 100;

function readBackTables(rb: ReadBackResult): ReportTable[] {
  const problems: (string | number | null)[][] = [
    ...rb.lost.map((id) => [id, 'lost', 'acknowledged, not found']),
    ...(rb.wrongState ?? []).map((w) => [w.id, 'wrong state', `${w.found}, expected ${w.expected} (${w.where})`]),
    ...(rb.duplicated ?? []).map((d) => [d.id, 'duplicated', `listed ${d.count} times`]),
    ...rb.unverified.map((u) => [u.id, 'unverified', u.code]),
  ];
  return [
    {
      title: `Read back of the created ${rb.noun}`,
      columns: ['created', 'verified', 'lost', 'wrong state', 'duplicated', 'unverified'],
      rows: [
        [
          rb.created,
          rb.verified,
          rb.lost.length,
          rb.wrongState?.length ?? null,
          rb.duplicated?.length ?? null,
          rb.unverified.length,
        ],
      ],
    },
    ...(problems.length > 0
      ? [
          {
            title: 'Read-back problems',
            columns: ['id', 'problem', 'detail'],
            rows: problems.slice(0, SHOWN),
            ...(problems.length > SHOWN ? { note: `the first ${SHOWN} of ${problems.length}` } : {}),
          },
        ]
      : []),
  ];
}

interface CheckLike {
  name: string;
  summary: string;
  problems: string[];
}

/** The checks of a scenario that judges itself (orders-contention), when its JSON carries them. */
function checksOf(json: unknown): CheckLike[] | null {
  const checks = (json as { checks?: unknown } | null | undefined)?.checks;
  if (!Array.isArray(checks)) return null;
  return checks.filter(
    (c): c is CheckLike => typeof c?.name === 'string' && typeof c.summary === 'string' && Array.isArray(c.problems),
  );
}

const perSecond = (n: number, s: number) => (s > 0 ? Math.round((n / s) * 10) / 10 : 0);
const msText = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)} ms`);

/**
 * The HTML report of a loadtest run: the printed report's numbers, the per-second charts and the tables.
 * `checks` is a self-judging scenario's JSON (orders-contention), `text` what was printed.
 */
export function loadtestPage(
  report: LoadtestReport,
  timeline: Timeline,
  options: { text: string[]; startedAt: Date; checks?: unknown },
): ReportPage {
  const t = report.totals;
  const rb = report.readBack;
  const checks = checksOf(options.checks);
  const failedChecks = checks?.filter((c) => c.problems.length > 0).length ?? 0;
  const cards: ReportCard[] = [
    { label: 'sent', value: t.sent, note: `${t.scheduled} scheduled` },
    { label: 'answered', value: t.completed },
    { label: 'ok', value: t.ok, ...(t.failed === 0 && t.ok > 0 ? { tone: 'good' as const } : {}) },
    { label: 'failed', value: t.failed, ...(t.failed > 0 ? { tone: 'bad' as const } : {}) },
    { label: 'answered per second', value: perSecond(t.completed, report.elapsedS) },
    { label: 'p50', value: msText(t.latencyMs.p50) },
    { label: 'p99', value: msText(t.latencyMs.p99) },
    { label: 'max', value: msText(t.latencyMs.max) },
  ];
  if (t.degraded > 0) cards.push({ label: 'degraded reads', value: t.degraded });
  if (rb) {
    const missing = rb.lost.length + (rb.wrongState?.length ?? 0) + (rb.duplicated?.length ?? 0);
    cards.push({
      label: 'read back wrong',
      value: missing,
      note: `lost, in a wrong state or duplicated, of ${rb.created} created`,
      ...(missing > 0 ? { tone: 'bad' as const } : { tone: 'good' as const }),
    });
  }
  if (checks) {
    cards.push({
      label: 'checks failed',
      value: `${failedChecks} of ${checks.length}`,
      tone: failedChecks > 0 ? 'bad' : 'good',
    });
  }
  const tables = [
    kindsTable(report.kinds, report.totals),
    statusesTable(timeline.statusesByKind()),
    failuresTable(report.failures),
    ...(rb ? readBackTables(rb) : []),
    ...(checks
      ? [
          {
            title: 'Checks',
            columns: ['check', 'verdict', 'what held, or the first problems'],
            rows: checks.map((c) => [
              c.name,
              c.problems.length === 0 ? 'ok' : `FAIL (${c.problems.length})`,
              c.problems.length === 0 ? c.summary : c.problems.slice(0, 3).join('; '),
            ]),
          },
        ]
      : []),
  ];
  return {
    title: `loadtest ${report.scenario}`,
    lines: [formatTitle(report)],
    startedAt: options.startedAt.toISOString(),
    labels: { sent: 'sent', answered: 'answered', errors: 'errors' },
    cards,
    series: timeline.series(),
    windows: [],
    tables,
    text: options.text,
    summary: options.checks === undefined ? report : { ...report, checks: options.checks },
  };
}
