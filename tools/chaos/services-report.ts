import type { ServicesFault } from './service-fault-plan.ts';
import type { FaultWindow, LatencyWindow, ServicesAnalysis } from './service-windows.ts';

/** What `chaos services` prints, and writes with --json. Times in seconds from the start of the load. */
export interface ServicesChaosReport extends ServicesAnalysis {
  fault: ServicesFault;
  /** The plan in words: which instance is killed when, and restarted when. */
  faults: string;
  scenario: string;
  rate: number;
  rampS: number;
  durationS: number;
  accounts: number;
  gateway: string;
  services: string;
  database: string;
  requestsSent: number;
  /** Requests that got an HTTP answer, whatever its status. */
  requestsAnswered: number;
  /** Per HTTP status (or client code when no answer came). */
  answeredByStatus: Record<string, number>;
  requestsFailed: number;
  /** Per `<status> <code>`, or the client code alone when no answer came. */
  failedByCode: Record<string, number>;
  /** Answers of the gateway's /readyz the breaker delays come from. */
  readyzSamples: number;
  /** Every requirement of the plan held. */
  held: boolean;
}

const LABEL = 31;
const row = (label: string, value: string) => `${label.padEnd(LABEL)}${value}`;
const counts = (byKey: Record<string, number>) =>
  Object.entries(byKey)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
const span = (w: { fromS: number; toS: number }) => `${w.fromS.toFixed(1)}-${w.toS.toFixed(1)} s`;
const p99 = (w: LatencyWindow) => `${w.p99Ms === null ? '-' : `${w.p99Ms} ms`} (${span(w)}, ${w.requests} answers)`;

function breakerLine(w: FaultWindow, samples: string): string {
  const out =
    w.outOfRotationAfterKillMs === null
      ? 'never seen out of rotation'
      : `${w.targets.length > 1 ? 'all ' : ''}out of rotation ${w.outOfRotationAfterKillMs} ms after the kill`;
  const back = w.instances.map((i) => {
    const listening =
      i.listeningAfterRestartMs === null
        ? 'never listened'
        : `listening ${i.listeningAfterRestartMs} ms after the restart`;
    const rotation =
      i.backInRotationAfterListeningMs === null
        ? 'never back in rotation'
        : `back in rotation ${i.backInRotationAfterListeningMs} ms after that`;
    return `${w.targets.length > 1 ? `${i.name} ` : ''}${listening}, ${rotation}`;
  });
  return `${out}; ${back.join('; ')} (${samples}, longest gap ${ms(w.pollGapMaxMs)})`;
}

/** The report as lines for a terminal; the last one says whether every requirement held. */
export function printServicesReport(report: ServicesChaosReport, out: (line: string) => void): void {
  out(row('plan', `${report.fault}: ${report.faults}`));
  out(
    row(
      'load',
      `${report.scenario} at ${report.rate} req/s for ${report.durationS} s (ramp ${report.rampS} s), ${report.accounts} seeded accounts, on ${report.gateway}`,
    ),
  );
  out(row('services', `${report.services}; database ${report.database}`));
  out(row('requests sent', String(report.requestsSent)));
  out(row('requests answered', `${report.requestsAnswered} (${counts(report.answeredByStatus) || 'none'})`));
  out(
    row(
      'requests failed',
      `${report.requestsFailed}${report.requestsFailed > 0 ? ` (${counts(report.failedByCode)})` : ''}`,
    ),
  );
  const d = report.degraded;
  const parts = counts(d.byParts);
  out(
    row('degraded answers', `${d.inside} inside the fault windows, ${d.outside} outside${parts ? ` (${parts})` : ''}`),
  );
  const after = report.afterBreakerOpened;
  if (report.fault === 'all-quotes')
    out(
      row(
        'after the breaker opened',
        after === null
          ? 'the breaker never opened'
          : `${after.requests} answers due ${span(after)}: ${after.degradedQuotes} degraded ["quotes"], ${after.other} otherwise`,
      ),
    );
  out(row('p99 before the first fault', p99(report.baseline)));
  for (const w of report.windows)
    out(
      row(
        `p99 ${w.label}`,
        `${p99(w)}: ${w.ratio === null ? '-' : `${w.ratio}x`}; killed ${ms(w.down.p99Ms)}, rejoining ${ms(w.rejoining.p99Ms)}`,
      ),
    );
  for (const w of report.windows)
    out(
      row(`breaker ${w.targets.join(' + ')}`, breakerLine(w, `readyz every 100 ms, ${report.readyzSamples} answers`)),
    );
  for (const c of report.checks) out(row(c.held ? 'held' : 'FAILED', `${c.requirement}: ${c.detail}`));
  const failed = report.checks.filter((c) => !c.held).length;
  out(
    row(
      'result',
      failed === 0
        ? `every requirement held (${report.checks.length})`
        : `${failed} of ${report.checks.length} requirements failed`,
    ),
  );
}
