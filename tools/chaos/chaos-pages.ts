import type { ReportPage } from '../loadtest/html-report.ts';
import { failuresTable, kindsTable, statusesTable } from '../loadtest/loadtest-page.ts';
import { summarizeKinds } from '../loadtest/report.ts';
import { APPLIED, printBrokerReport, type BrokerChaosRun } from './broker-chaos.ts';
import { printFailoverReport, type FailoverChaosRun } from './failover-chaos.ts';
import { printServicesReport } from './services-report.ts';
import type { ServicesChaosRun } from './services-chaos.ts';

const printed = (print: (out: (line: string) => void) => void) => {
  const lines: string[] = [];
  print((line) => lines.push(line));
  return lines;
};
const bad = (n: number) => (n > 0 ? ('bad' as const) : ('good' as const));

/** The HTML report of `chaos failover`: the load per second with the fault and the longest write stall shaded. */
export function failoverPage(run: FailoverChaosRun, url: string): ReportPage {
  const r = run.report;
  const { kinds, totals } = summarizeKinds(run.tally);
  const failures = [...run.tally.failures.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
  return {
    title: `chaos failover: ${r.fault} at ${r.faultAtS} s`,
    lines: [
      `${r.scenario} at ${r.rate} req/s for ${r.durationS} s against ${url}`,
      `fault: lab ${r.fault} at ${r.faultAtS} s${r.faultOutput ? ` (${r.faultOutput})` : ''}`,
    ],
    startedAt: run.startedAt.toISOString(),
    labels: { sent: 'sent', answered: 'answered', errors: 'errors' },
    cards: [
      { label: 'sent', value: r.requestsSent },
      { label: 'failed', value: r.requestsFailed, tone: bad(r.requestsFailed) },
      { label: 'retried', value: '-', note: 'the load sends each request once: a failure counts as failed' },
      {
        label: 'acknowledged writes missing',
        value: r.acknowledgedWritesMissing,
        tone: bad(r.acknowledgedWritesMissing),
        note: `of ${r.acknowledgedWrites} acknowledged creations, on the primary after the fault`,
      },
      { label: 'read back lost', value: r.readBackLost, tone: bad(r.readBackLost) },
      { label: 'max latency', value: `${r.maxLatencyMs} ms` },
      { label: 'write stall', value: `${r.writeStallMs} ms`, note: 'longest time without a successful write' },
    ],
    series: run.tally.timeline.series(),
    windows: run.windows,
    tables: [kindsTable(kinds, totals), statusesTable(run.tally.timeline.statusesByKind()), failuresTable(failures)],
    text: printed((out) => printFailoverReport(r, out)),
    summary: r,
  };
}

/** The HTML report of `chaos broker`: outbox writes and effects applied per second, the outage shaded. */
export function brokerPage(
  run: BrokerChaosRun,
  options: { stopAt: number; stopFor: number; rate: number; duration: number },
): ReportPage {
  const r = run.report;
  const latency = run.timeline.latencySummary('produce');
  const retried = r.publishRetries + r.handlerRetries;
  return {
    title: `chaos broker: ${r.broker} stopped at ${options.stopAt} s for ${options.stopFor} s`,
    lines: [
      `${options.rate} events/s for ${options.duration} s through the outbox, the relay and ${r.broker} to a consumer with exactly-once effects`,
    ],
    startedAt: run.startedAt.toISOString(),
    labels: { sent: 'outbox writes', answered: 'committed', errors: 'failed' },
    cards: [
      { label: 'committed', value: r.eventsCommitted },
      { label: 'published', value: r.eventsPublished },
      { label: 'applied', value: r.effectsApplied },
      { label: 'failed', value: r.producerFailures, tone: bad(r.producerFailures), note: 'outbox writes that failed' },
      {
        label: 'retried',
        value: retried,
        note: `${r.publishRetries} publishes by the relay, ${r.handlerRetries} deliveries by the consumer`,
      },
      { label: 'missing', value: r.eventsLost, tone: bad(r.eventsLost), note: 'committed, never applied' },
      { label: 'duplicated effects', value: r.duplicatedEffects, tone: bad(r.duplicatedEffects) },
      { label: 'broker down', value: `${r.brokerDownSeconds} s` },
      {
        label: 'caught up after restart',
        value: r.caughtUpSecondsAfterRestart === null ? 'no' : `${r.caughtUpSecondsAfterRestart} s`,
        ...(r.caughtUpSecondsAfterRestart === null ? { tone: 'bad' as const } : {}),
      },
    ],
    series: run.timeline.series(),
    windows: run.windows,
    tables: [
      {
        title: 'Events',
        columns: ['committed', 'published', 'applied', 'missing', 'duplicated effects', 'failed writes', 'retried'],
        rows: [
          [
            r.eventsCommitted,
            r.eventsPublished,
            r.effectsApplied,
            r.eventsLost,
            r.duplicatedEffects,
            r.producerFailures,
            retried,
          ],
        ],
      },
      {
        title: 'Outbox writes',
        columns: ['kind', 'committed', 'failed', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
        rows: [['produce', r.eventsCommitted, r.producerFailures, latency.p50, latency.p90, latency.p99, latency.max]],
        note: `Latency from when each write was due to its commit; the charts also show ${APPLIED} per second.`,
      },
      statusesTable(run.timeline.statusesByKind()),
    ],
    text: printed((out) => printBrokerReport(r, out)),
    summary: r,
  };
}

/** The HTML report of `chaos services`: the load per second with each fault window shaded, degraded answers charted. */
export function servicesPage(run: ServicesChaosRun): ReportPage {
  const r = run.report;
  const { kinds, totals } = summarizeKinds(run.tally);
  const failures = [...run.tally.failures.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
  const degraded = r.degraded.inside + r.degraded.outside;
  const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
  return {
    title: `chaos services: ${r.fault}`,
    lines: [
      `${r.scenario} at ${r.rate} req/s for ${r.durationS} s (ramp ${r.rampS} s) against the gateway ${r.gateway}`,
      `${r.services}; database ${r.database}`,
      `faults: ${r.faults}`,
    ],
    startedAt: run.startedAt.toISOString(),
    labels: { sent: 'sent', answered: 'answered', errors: 'failed' },
    cards: [
      { label: 'sent', value: r.requestsSent },
      { label: 'failed', value: r.requestsFailed, tone: bad(r.requestsFailed) },
      {
        label: 'degraded',
        value: degraded,
        note: `${r.degraded.inside} inside the fault windows, ${r.degraded.outside} outside`,
        ...(r.fault === 'one-of-two' || r.degraded.outside > 0 ? { tone: bad(degraded) } : {}),
      },
      { label: 'p99 before the first fault', value: ms(r.baseline.p99Ms) },
      ...r.windows.map((w) => ({
        label: `p99 ${w.label}`,
        value: ms(w.p99Ms),
        ...(w.ratio === null ? {} : { note: `${w.ratio}x the p99 before` }),
      })),
      {
        label: 'requirements',
        value: `${r.checks.filter((c) => c.held).length} of ${r.checks.length} held`,
        tone: r.held ? ('good' as const) : ('bad' as const),
      },
    ],
    series: run.tally.timeline.series(),
    windows: run.windows,
    tables: [
      {
        title: 'Fault windows',
        columns: ['window', 'from s', 'to s', 'answers', 'p99 ms', 'ratio', 'degraded', 'failed'],
        rows: [
          [r.baseline.label, r.baseline.fromS, r.baseline.toS, r.baseline.requests, r.baseline.p99Ms, null, null, null],
          ...r.windows.flatMap((w) => [
            [w.label, w.fromS, w.toS, w.requests, w.p99Ms, w.ratio, w.degraded, w.failed],
            [`  ${w.down.label}`, w.down.fromS, w.down.toS, w.down.requests, w.down.p99Ms, null, null, null],
            [
              `  ${w.rejoining.label}`,
              w.rejoining.fromS,
              w.rejoining.toS,
              w.rejoining.requests,
              w.rejoining.p99Ms,
              null,
              null,
              null,
            ],
          ]),
        ],
        note: 'A window runs from the kill until every restarted instance is back in rotation; a request belongs to the window it was due in.',
      },
      {
        title: 'Breakers (from the gateway’s /readyz, polled every 100 ms)',
        columns: [
          'instance',
          'out of rotation after the kill ms',
          'listening after the restart ms',
          'back in rotation after listening ms',
        ],
        rows: r.windows.flatMap((w) =>
          w.instances.map((i) => [
            i.name,
            w.outOfRotationAfterKillMs,
            i.listeningAfterRestartMs,
            i.backInRotationAfterListeningMs,
          ]),
        ),
      },
      {
        title: 'Requirements',
        columns: ['requirement', 'held', 'detail'],
        rows: r.checks.map((c) => [c.requirement, c.held ? 'held' : 'FAILED', c.detail]),
      },
      kindsTable(kinds, totals),
      statusesTable(run.tally.timeline.statusesByKind()),
      failuresTable(failures),
    ],
    text: printed((out) => printServicesReport(r, out)),
    summary: r,
  };
}
