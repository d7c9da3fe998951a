import { median, percentile } from '../support/stats.ts';
import type { ReadTimings } from './read-latency.ts';
import { describeFailures, type RunCpu, type WriteResult } from './write-throughput.ts';

/** The target of issue 6: a cross-shard read costs at most 1.3 times the slowest shard's own query. */
export const READ_TARGET = 1.3;

const ms = (value: number) => (value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0));
const times = (value: number) => `${value.toFixed(2)}x`;
const p50 = (samples: readonly number[]) => median(samples);
const p99 = (samples: readonly number[]) => percentile(samples, 99);
/** Stratum's own statements at once: for the stats they are the shard's own query, timed as "all at once". */
const ownStatements = (r: ReadTimings) =>
  r.slowestStratumStatements.length > 0 ? r.slowestStratumStatements : r.slowestTogether;

/** Latency of each read: stratum, the slowest shard alone, and the shards asked directly at once. */
export function formatReadTable(results: readonly ReadTimings[]): string {
  const rows = results.map(
    (r) =>
      `| ${r.read.name} | ${ms(p50(r.stratum))} | ${ms(p99(r.stratum))} | ${ms(p50(r.slowestAlone))} | ${ms(p99(r.slowestAlone))} ` +
      `| ${ms(p50(r.slowestTogether))} | ${ms(p99(r.slowestTogether))} | ${ms(p50(ownStatements(r)))} | ${ms(p99(ownStatements(r)))} | ${ms(p50(r.httpFloor))} | ${ms(p99(r.httpFloor))} | ${ms(p50(r.sumAlone))} | ${r.alone.map((a) => ms(p50(a))).join(' / ')} |`,
  );
  return [
    "| read | stratum p50 ms | stratum p99 ms | slowest shard alone p50 | p99 | all shards at once directly, slowest p50 | p99 | stratum's own shard statements at once directly, slowest p50 | p99 | GET /healthz of the same server (HTTP floor) p50 | p99 | shards one after another (sum) p50 | each shard alone p50 (0 / 1 / 2 / 3) |",
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows,
  ].join('\n');
}

/** The ratio rows: stratum over the slowest shard alone (the target), and over the direct fan-out. */
export function formatReadRatios(results: readonly ReadTimings[]): string {
  const lines = results.flatMap((r) => {
    const alone = [p50(r.stratum) / p50(r.slowestAlone), p99(r.stratum) / p99(r.slowestAlone)] as const;
    const together = [p50(r.stratum) / p50(r.slowestTogether), p99(r.stratum) / p99(r.slowestTogether)] as const;
    const own = [p50(r.stratum) / p50(ownStatements(r)), p99(r.stratum) / p99(ownStatements(r))] as const;
    const verdict = alone[0] <= READ_TARGET && alone[1] <= READ_TARGET ? 'met' : 'missed';
    return [
      `ratio ${r.read.key} stratum/slowest shard alone: p50 ${times(alone[0])}, p99 ${times(alone[1])} (target <= ${READ_TARGET}x: ${verdict})`,
      `ratio ${r.read.key} stratum/all shards at once directly: p50 ${times(together[0])}, p99 ${times(together[1])}`,
      `ratio ${r.read.key} stratum/its own shard statements at once directly: p50 ${times(own[0])}, p99 ${times(own[1])}`,
    ];
  });
  return ['```', ...lines, '```'].join('\n');
}

const rate = (run: { created: number; seconds: number }) => run.created / run.seconds;

/** Orders per second of each shard count (median run), with latency, CPU and what the shards held afterwards. */
export function formatWriteTable(results: readonly WriteResult[]): string {
  const rows = results.map((r) => {
    const rates = r.runs.map(rate);
    const latencies = r.runs.flatMap((run) => run.latenciesMs);
    const cpu = (pick: (c: RunCpu) => number | undefined) => {
      const values = r.cpu.map(pick).filter((v) => v !== undefined);
      return values.length === 0 ? '-' : `${Math.round(median(values))}%`;
    };
    const failures = r.runs.map(describeFailures).filter(Boolean).join('; ') || '0';
    const perOrder = cpuPerOrder(r);
    return (
      `| ${r.shardCount} | ${Math.round(median(rates)).toLocaleString('en-US')} | ${rates.map((x) => Math.round(x).toLocaleString('en-US')).join(', ')} ` +
      `| ${ms(p50(latencies))} | ${ms(p99(latencies))} | ${cpu((c) => c.server)} | ${cpu((c) => c.postgres)} | ${cpu((c) => c.loadGenerator)} | ${cpu((c) => c.others)} | ${cpu((c) => c.machine)} | ${perOrder.length > 0 ? ms(median(perOrder)) : '-'} ` +
      `| ${r.drainSeconds.length > 0 ? ms(median(r.drainSeconds)) : '- (ROLE=api)'} | ${r.ordersOnShards.map((n) => n.toLocaleString('en-US')).join(' / ')} (201 answers: ${r.createdAnswers.toLocaleString('en-US')}) | ${failures} |`
    );
  });
  return [
    '| shards | orders/s (median) | orders/s per run | p50 ms | p99 ms | CPU, % of one core: stratum server | PostgreSQL | load generator | other processes | machine busy, % of all cores | stratum + PostgreSQL CPU per order, ms | relay drain after a run, s | orders on each shard afterwards | failed requests |',
    '|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|',
    ...rows,
  ].join('\n');
}

/**
 * Milliseconds of stratum's and PostgreSQL's CPU per order created, per run: unlike orders/s, hardly moved by
 * what else a shared machine runs.
 */
function cpuPerOrder(result: WriteResult): number[] {
  return result.runs.flatMap((run, i) => {
    const { server, postgres } = result.cpu[i]!;
    return server === undefined || postgres === undefined || run.created === 0
      ? []
      : [(((server + postgres) / 100) * run.seconds * 1000) / run.created];
  });
}

export function formatWriteRatios(results: readonly WriteResult[]): string {
  const of = (n: number) => results.find((r) => r.shardCount === n)!;
  const throughput = (n: number) => median(of(n).runs.map(rate));
  const cpu = (n: number) => (cpuPerOrder(of(n)).length > 0 ? median(cpuPerOrder(of(n))) : undefined);
  const cpuRatio = (n: number) =>
    cpu(n) === undefined || cpu(1) === undefined
      ? []
      : [`ratio stratum + PostgreSQL CPU per order ${n}/1 shards: ${times(cpu(n)! / cpu(1)!)}`];
  return [
    '```',
    `ratio create throughput 2/1 shards: ${times(throughput(2) / throughput(1))}`,
    `ratio create throughput 4/1 shards: ${times(throughput(4) / throughput(1))}`,
    ...cpuRatio(2),
    ...cpuRatio(4),
    '```',
  ].join('\n');
}
