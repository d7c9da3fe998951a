import type { RateResult } from './broker-run.ts';

const TARGET_RATE = 5000;
const TARGET_P99_MS = 100;
/** The share of the offered rate that must be acknowledged for a run to count as sustained. */
const SUSTAINED = 0.95;

const ms = (v: number | undefined) =>
  v === undefined ? 'n/a' : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
const int = (v: number) => Math.round(v).toLocaleString('en-US');

/** The results table, one row per broker and offered rate. */
export function formatResultsTable(results: readonly RateResult[]): string {
  const rows = results.map((r) => {
    const m = r.measurement;
    const at = (v: number | undefined) =>
      v !== undefined && m.latency?.censoredFrom !== undefined && v >= m.latency.censoredFrom ? `≥ ${ms(v)}` : ms(v);
    return `| ${r.broker} | ${int(r.rate)} | ${int(m.ackedPerSecond)} | ${at(m.latency?.p50)} | ${at(m.latency?.p99)} | ${at(m.latency?.max)} | ${formatLost(r)} |`;
  });
  return [
    '| broker | offered events/s | achieved events/s | p50 ms | p99 ms | max ms | lost |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

/**
 * 0, or how many committed events were never handled and where they were. When the drain was cut short while
 * events were still moving, they are a backlog not yet proven lost; when it stalled, they are stuck or lost.
 */
function formatLost(r: RateResult): string {
  const m = r.measurement;
  if (m.lost === 0) return '0';
  const where = `${int(m.unhandled.inOutbox)} in the outbox, ${int(m.unhandled.inBroker)} in the broker, ${int(m.unhandled.inRunner)} in the runner`;
  return r.drainNote?.startsWith('still draining')
    ? `not proven: ${int(m.lost)} still queued when the drain stopped (${where})`
    : `${int(m.lost)} (${where}${r.drainNote ? `; ${r.drainNote}` : ''})`;
}

/** What the producer managed and what else happened along the way: the table that says why a row looks as it does. */
export function formatDiagnosticsTable(results: readonly RateResult[]): string {
  const rows = results.map((r) => {
    const m = r.measurement;
    return (
      `| ${r.broker} | ${int(r.rate)} | ${int(m.committedPerSecond)} | ${int(m.transactions)} | ${int(m.shed)} | ${int(m.producerErrors)} ` +
      `| ${ms(m.commitLag.p50)} / ${ms(m.commitLag.p99)} | ${int(m.redelivered)} | ${int(m.duplicated)} | ${int(m.handledBeforeCommitReturned)} ` +
      `| ${int(m.relayBatches.count)} × ${m.relayBatches.meanSize.toFixed(1)} | ${Math.round(r.cpu.self)}% | ${ms(r.eventLoopDelayP99)} | ${Math.round(r.cpu.machine)}% |`
    );
  });
  return [
    '| broker | offered events/s | committed events/s | transactions | shed | producer errors | commit lag p50 / p99 ms | redelivered | handled twice | handled before COMMIT returned | relay publishes × mean events | CPU, bench process (of one core) | event-loop delay p99 ms | CPU, machine |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

/**
 * One line per broker and rate against the target: p99 under 100 ms at 5,000 events/s, which also needs the
 * rate sustained (at least 95% acknowledged within the window) and nothing lost.
 */
export function formatTargetLines(results: readonly RateResult[]): string {
  return results
    .map((r) => {
      const m = r.measurement;
      const problems = [
        m.latency === undefined
          ? 'nothing was handled'
          : m.latency.p99 < TARGET_P99_MS
            ? ''
            : `p99 ${ms(m.latency.p99)} ms`,
        m.ackedPerSecond >= SUSTAINED * r.rate
          ? ''
          : `only ${int(m.ackedPerSecond)} events/s acknowledged of ${int(r.rate)} offered`,
        m.lost === 0 ? '' : `${int(m.lost)} not handled by the end of the drain`,
        m.duplicated === 0 ? '' : `${int(m.duplicated)} handled twice`,
      ].filter(Boolean);
      const verdict = problems.length === 0 ? 'met' : `missed (${problems.join('; ')})`;
      const scope = r.rate === TARGET_RATE ? '' : ` [this run offered ${int(r.rate)} events/s]`;
      return `- ${r.broker} at ${int(r.rate)} events/s: target p99 < ${TARGET_P99_MS} ms at ${int(TARGET_RATE)} events/s: ${verdict}${scope}`;
    })
    .join('\n');
}

/** Where the time went between COMMIT and acknowledgement: p50 / p99 of each step, in milliseconds. */
export function formatStagesTable(results: readonly RateResult[]): string {
  const q = (v: { p50: number; p99: number } | undefined) => (v ? `${ms(v.p50)} / ${ms(v.p99)}` : 'n/a');
  const rows = results.map((r) => {
    const s = r.measurement.stages;
    return s
      ? `| ${r.broker} | ${int(r.rate)} | ${q(s.relayPickup)} | ${q(s.publish)} | ${q(s.toRunner)} | ${q(s.runnerBegin)} | ${q(s.runnerCommit)} | ${q(s.adapterGap)} |`
      : `| ${r.broker} | ${int(r.rate)} | n/a | n/a | n/a | n/a | n/a | n/a |`;
  });
  return [
    '| broker | offered events/s | commit → relay publishes | publish call | publish done → runner gets it | runner: delivery → handler | runner: handler → ack (COMMIT) | adapter: ack → next delivery, backlogged |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}
