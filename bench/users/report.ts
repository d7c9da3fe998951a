import type { Summary } from '../support/stats.ts';

export interface MethodResult {
  name: string;
  summary: Summary;
}

export interface SizeResults {
  size: number;
  stratum: MethodResult;
  setBased: MethodResult;
  awaited: MethodResult;
  pipelined: MethodResult;
}

const ms = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(1));

/** One size as markdown: the table, then the two ratio lines (blank-line separated, so each renders as its own line). */
export function formatSize(r: SizeResults): string {
  const rows = [r.awaited, r.pipelined, r.setBased, r.stratum].map(
    (m) => `| ${m.name} | ${m.summary.samples} | ${ms(m.summary.medianMs)} | ${ms(m.summary.p99Ms)} |`,
  );
  const overhead =
    `ratio stratum/(c) at ${r.size} users: median ${(r.stratum.summary.medianMs / r.setBased.summary.medianMs).toFixed(2)}x, ` +
    `p99 ${(r.stratum.summary.p99Ms / r.setBased.summary.p99Ms).toFixed(2)}x (target <= 1.3x)`;
  const speedup = `ratio (b)/stratum at ${r.size} users: median ${(r.pipelined.summary.medianMs / r.stratum.summary.medianMs).toFixed(1)}x (target >= 10x)`;
  return [
    `### ${r.size} existing users`,
    '',
    '| method | samples | median ms | p99 ms |',
    '|---|--:|--:|--:|',
    ...rows,
    '',
    overhead,
    '',
    speedup,
    '',
  ].join('\n');
}
