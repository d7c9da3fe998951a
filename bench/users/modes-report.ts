import type { Summary } from '../support/stats.ts';
import { RELATIVE_TOLERANCE, type ScoreCheck } from './eager-oracle.ts';
import type { BenchMode } from './options.ts';

export interface ModeResult {
  mode: BenchMode;
  /** POST /users one at a time. */
  single: Summary;
  load: {
    concurrency: number;
    created: number;
    seconds: number;
    /** Each creation's time under the load, queueing on the creation lock included. */
    latency: Summary | undefined;
    failures: Map<string, number>;
    /** Percent of one core for this process (client and stratum server), percent of all cores for the machine. */
    cpu: { node: number; machine: number } | undefined;
  };
  /** GET /users?limit=100 at random cursors, after the creations (for deferred: log not compacted). */
  reads: Summary;
  /** The same after the deferred mode's compaction (the eager mode read again in the same rounds). */
  readsAfterCompaction: Summary | undefined;
  compaction: { creations: number; users: number; seconds: number; batches: number; moved: number } | undefined;
  /** Users created in this mode's database, all phases. */
  creations: number;
}

export interface CheckResult {
  what: string;
  check: ScoreCheck;
}

export interface ModesSizeResults {
  size: number;
  results: ModeResult[];
  checks: CheckResult[];
}

/** The goals of SCORE_MODE=deferred. */
const GOALS = { creationP99Ms: 5, creationP99AtSize: 1_000_000, creationsPerSecond: 1000, readRatio: 1.5 };

const ms = (v: number) => (Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const perSecond = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const ratio = (v: number) =>
  `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(2) : v.toPrecision(2)}x`;
const count = (v: number) => v.toLocaleString('en-US');
const rate = (m: ModeResult) => (m.load.seconds > 0 ? m.load.created / m.load.seconds : Number.NaN);
const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
const modeName = (mode: BenchMode) => (mode === 'sync' ? 'eager (SCORE_MODE=sync)' : 'deferred (SCORE_MODE=deferred)');

function pair(r: ModesSizeResults): { eager: ModeResult; deferred: ModeResult } | undefined {
  const eager = r.results.find((m) => m.mode === 'sync');
  const deferred = r.results.find((m) => m.mode === 'deferred');
  return eager && deferred ? { eager, deferred } : undefined;
}

/** One size as markdown: the table, notes, ratio rows, goal rows and the correctness checks. */
export function formatModesSize(r: ModesSizeResults): string {
  const both = pair(r);
  const header = `| | ${r.results.map((m) => modeName(m.mode)).join(' | ')} |${both ? ' deferred/eager |' : ''}`;
  const align = `|---|${r.results.map(() => '--:|').join('')}${both ? '--:|' : ''}`;
  const row = (name: string, cell: (m: ModeResult) => string, ratioOf?: (m: ModeResult) => number) => {
    const cells = r.results.map(cell).join(' | ');
    const last = both ? ` ${ratioOf ? ratio(ratioOf(both.deferred) / ratioOf(both.eager)) : ''} |` : '';
    return `| ${name} | ${cells} |${last}`;
  };
  const compacted = r.results.some((m) => m.readsAfterCompaction);
  const rows = [
    row('POST /users one at a time: samples', (m) => String(m.single.samples)),
    row(
      'POST /users one at a time: p50 ms',
      (m) => ms(m.single.medianMs),
      (m) => m.single.medianMs,
    ),
    row(
      'POST /users one at a time: p99 ms',
      (m) => ms(m.single.p99Ms),
      (m) => m.single.p99Ms,
    ),
    row('creation load: in flight', (m) => String(m.load.concurrency)),
    row('creation load: creations in seconds', (m) => `${count(m.load.created)} in ${m.load.seconds.toFixed(1)}`),
    row('creations per second', (m) => perSecond(rate(m)), rate),
    row('POST /users under the load: p50 / p99 ms', (m) =>
      m.load.latency ? `${ms(m.load.latency.medianMs)} / ${ms(m.load.latency.p99Ms)}` : '-',
    ),
    row('CPU during the load: this process (stratum and client) / machine', (m) =>
      m.load.cpu ? `${m.load.cpu.node.toFixed(0)}% of a core / ${m.load.cpu.machine.toFixed(0)}%` : '-',
    ),
    row(`GET /users?limit=100: samples`, (m) => String(m.reads.samples)),
    row(
      `GET /users?limit=100${compacted ? ', log not compacted' : ''}: p50 ms`,
      (m) => ms(m.reads.medianMs),
      (m) => m.reads.medianMs,
    ),
    row(
      `GET /users?limit=100${compacted ? ', log not compacted' : ''}: p99 ms`,
      (m) => ms(m.reads.p99Ms),
      (m) => m.reads.p99Ms,
    ),
    ...(compacted
      ? [
          row(
            'GET /users?limit=100 after compaction: p50 ms',
            (m) => ms(m.readsAfterCompaction?.medianMs ?? Number.NaN),
            (m) => m.readsAfterCompaction?.medianMs ?? Number.NaN,
          ),
          row(
            'GET /users?limit=100 after compaction: p99 ms',
            (m) => ms(m.readsAfterCompaction?.p99Ms ?? Number.NaN),
            (m) => m.readsAfterCompaction?.p99Ms ?? Number.NaN,
          ),
          row('compaction: logged creations folded in', (m) =>
            m.compaction ? `${count(m.compaction.creations)} into ${count(m.compaction.users)} users` : '-',
          ),
          row('compaction: seconds (batches)', (m) =>
            m.compaction ? `${m.compaction.seconds.toFixed(1)} (${m.compaction.batches})` : '-',
          ),
        ]
      : []),
    row('users created in all (warm-up included)', (m) => count(m.creations)),
  ];

  const notes: string[] = [];
  for (const m of r.results) {
    if (m.mode === 'sync' && (m.single.samples < 100 || m.load.concurrency < (both?.deferred.load.concurrency ?? 0)))
      notes.push(
        `${label(m.mode)} at ${r.size} users: ${m.single.samples} creations one at a time and ${m.load.created} under the ` +
          `load with ${m.load.concurrency} in flight, as every creation updates all ${count(r.size)} other users` +
          `${m.single.samples < 100 ? `; with fewer than 100 samples p99 is the slowest one` : ''}.`,
      );
    for (const [message, times] of m.load.failures)
      notes.push(`${label(m.mode)} at ${r.size} users: ${times} creations of the load failed: ${message}`);
  }

  const ratios: string[] = [];
  if (both) {
    const { eager, deferred } = both;
    const at = `at ${r.size} users`;
    ratios.push(
      `ratio deferred/eager creation p50 ${at}: ${ratio(deferred.single.medianMs / eager.single.medianMs)}`,
      `ratio deferred/eager creation p99 ${at}: ${ratio(deferred.single.p99Ms / eager.single.p99Ms)}`,
      `ratio deferred/eager creations per second ${at}: ${ratio(rate(deferred) / rate(eager))}`,
      `ratio deferred/eager GET /users p50 ${at}${compacted ? ', log not compacted' : ''}: ${ratio(deferred.reads.medianMs / eager.reads.medianMs)} (goal <= ${GOALS.readRatio}x)`,
      `ratio deferred/eager GET /users p99 ${at}${compacted ? ', log not compacted' : ''}: ${ratio(deferred.reads.p99Ms / eager.reads.p99Ms)} (goal <= ${GOALS.readRatio}x)`,
    );
    if (deferred.readsAfterCompaction && eager.readsAfterCompaction)
      ratios.push(
        `ratio deferred/eager GET /users p50 ${at}, after compaction: ${ratio(deferred.readsAfterCompaction.medianMs / eager.readsAfterCompaction.medianMs)} (goal <= ${GOALS.readRatio}x)`,
        `ratio deferred/eager GET /users p99 ${at}, after compaction: ${ratio(deferred.readsAfterCompaction.p99Ms / eager.readsAfterCompaction.p99Ms)} (goal <= ${GOALS.readRatio}x)`,
      );
  }

  const goals = goalLines(r).map((g) => `goal: ${g.text}`);
  const checks = [
    `Correctness (scores equal when they differ by at most ${RELATIVE_TOLERANCE} relative to the larger):`,
    '',
    ...r.checks.map((c) => `- ${formatCheck(c)}`),
  ];
  return [
    `### ${r.size} existing users`,
    '',
    header,
    align,
    ...rows,
    '',
    ...notes.flatMap((n) => [n, '']),
    ...[...ratios, ...goals].flatMap((line) => [line, '']),
    ...checks,
    '',
  ].join('\n');
}

const label = (mode: BenchMode) => (mode === 'sync' ? 'eager' : 'deferred');

function formatCheck(c: CheckResult): string {
  const { users, worst, mismatches } = c.check;
  if (mismatches.length === 0)
    return `ok: ${c.what}: ${users} users equal, worst relative difference ${worst.toExponential(1)}`;
  return `FAILED: ${c.what}: ${mismatches.length} of ${users} users differ, e.g. ${mismatches.slice(0, 3).join('; ')}`;
}

/** The goal rows of one size: each with its text and whether it was met (undefined: not measured). */
function goalLines(r: ModesSizeResults): Array<{ text: string; ok: boolean | undefined; goal: string }> {
  const deferred = r.results.find((m) => m.mode === 'deferred');
  if (!deferred) return [];
  const lines: Array<{ text: string; ok: boolean | undefined; goal: string }> = [];
  const p99Ok = deferred.single.p99Ms < GOALS.creationP99Ms;
  lines.push({
    goal: 'p99',
    ok: r.size === GOALS.creationP99AtSize ? p99Ok : undefined,
    text: `deferred creation p99 under ${GOALS.creationP99Ms} ms (set for ${GOALS.creationP99AtSize} users): ${ms(deferred.single.p99Ms)} ms at ${r.size} users, ${met(p99Ok)}`,
  });
  const perSecondOk = rate(deferred) >= GOALS.creationsPerSecond;
  lines.push({
    goal: 'rate',
    ok: perSecondOk,
    text: `at least ${count(GOALS.creationsPerSecond)} deferred creations per second: ${perSecond(rate(deferred))}/s at ${r.size} users, ${met(perSecondOk)}`,
  });
  const both = pair(r);
  if (both) {
    const p50 = both.deferred.reads.medianMs / both.eager.reads.medianMs;
    const p99 = both.deferred.reads.p99Ms / both.eager.reads.p99Ms;
    const ok = p50 <= GOALS.readRatio && p99 <= GOALS.readRatio;
    lines.push({
      goal: 'reads',
      ok,
      text: `deferred GET /users within ${GOALS.readRatio}x of eager (log not compacted): p50 ${ratio(p50)}, p99 ${ratio(p99)} at ${r.size} users, ${met(ok)}`,
    });
  }
  return lines;
}

/** The goals over every size, and the correctness checks, at the end of the report. */
export function formatModesSummary(all: readonly ModesSizeResults[]): string {
  const order = ['p99', 'rate', 'reads'];
  const lines = all
    .flatMap((r) => goalLines(r).filter((g) => g.ok !== undefined))
    .sort((x, y) => order.indexOf(x.goal) - order.indexOf(y.goal));
  const checks = all.flatMap((r) => r.checks);
  const failed = checks.filter((c) => c.check.mismatches.length > 0);
  return [
    '### Goals',
    '',
    ...lines.map((g) => `- ${g.text}`),
    ...(lines.some((g) => g.goal === 'p99')
      ? []
      : [
          `- deferred creation p99 under ${GOALS.creationP99Ms} ms at ${GOALS.creationP99AtSize} users: not measured in this run`,
        ]),
    ...(lines.some((g) => g.goal === 'reads')
      ? []
      : ['- deferred reads within 1.5x of eager: not measured (one mode only)']),
    `- correctness: ${checks.length} checks, ${failed.length === 0 ? 'all passed' : `${failed.length} FAILED`}`,
    '',
  ].join('\n');
}

/** The checks that failed, described, for the benchmark to fail with after printing its report. */
export function failedChecks(all: readonly ModesSizeResults[]): string[] {
  return all.flatMap((r) =>
    r.checks.filter((c) => c.check.mismatches.length > 0).map((c) => `${r.size} users: ${formatCheck(c)}`),
  );
}
