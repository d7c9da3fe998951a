import { summarizeLatencies } from './percentiles.ts';
import type { AnswerRecord, Check } from './contention-records.ts';

/** Per route: requests, status codes, p50/p99/max from the scheduled start. */
export interface RouteSummary {
  route: string;
  count: number;
  /** e.g. { '201': 310, '503': 2, none: 1 } */
  statuses: Record<string, number>;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export function summarizeRoutes(answers: readonly AnswerRecord[], routes: readonly string[]): RouteSummary[] {
  return routes.map((route) => {
    const mine = answers.filter((a) => a.route === route);
    const statuses: Record<string, number> = {};
    for (const a of mine) {
      const key = a.status === null ? (a.code ?? 'none') : String(a.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    const { p50, p99, max } = summarizeLatencies(mine.flatMap((a) => (a.latencyMs === null ? [] : [a.latencyMs])));
    return { route, count: mine.length, statuses, p50, p99, max };
  });
}

function table(rows: (string | number)[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => String(r[c] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (c === 0 || c === 2 ? String(cell).padEnd(widths[c]!) : String(cell).padStart(widths[c]!)))
      .join('  ')
      .trimEnd(),
  );
}

const ms = (v: number | null) => (v === null ? '-' : v.toFixed(1));
const SHOWN = 10;

/** The route table, then one line per check (ok or FAIL) with its first problems. */
export function formatContention(
  routes: readonly RouteSummary[],
  notes: readonly string[],
  checks: readonly Check[],
): string[] {
  const codes = (s: RouteSummary) =>
    Object.entries(s.statuses)
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code} x${n}`)
      .join(', ');
  const lines = table([
    ['route', 'count', 'status codes', 'p50 ms', 'p99 ms', 'max ms'],
    ...routes.map((r) => [r.route, r.count, codes(r) || '-', ms(r.p50), ms(r.p99), ms(r.max)]),
  ]);
  lines.push('', ...notes, '');
  for (const check of checks) {
    const ok = check.problems.length === 0;
    lines.push(`${ok ? 'ok  ' : 'FAIL'}  ${check.name}: ${ok ? check.summary : `${check.problems.length} problem(s)`}`);
    for (const problem of check.problems.slice(0, SHOWN)) lines.push(`        ${problem}`);
    if (check.problems.length > SHOWN) lines.push(`        … ${check.problems.length - SHOWN} more`);
  }
  const failed = checks.filter((c) => c.problems.length > 0).length;
  lines.push('', failed === 0 ? `all ${checks.length} checks passed` : `${failed} of ${checks.length} checks failed`);
  return lines;
}
