import { median } from '../support/stats.ts';

/** Every timed import of one method. */
export interface MethodRuns {
  key: 'stratum' | 'stratumLargeChunks' | 'psql' | 'inserts';
  name: string;
  seconds: number[];
  /** CPU of the stratum server process per run, in percent of one core. */
  serverCpu: number[];
  /** The server process's highest RSS during each run, in bytes. */
  serverPeakRss: Array<number | undefined>;
}

/** The server process's memory: before any import, while importing a fifth of the rows and all of them, and over the whole run. */
export interface MemoryResult {
  beforeBytes: number | undefined;
  smaller: { rows: number; peakBytes: number | undefined };
  full: { rows: number; peakBytes: number | undefined };
  /** VmHWM after every run: the most the process ever held. */
  lifetimePeakBytes: number | undefined;
}

const int = (v: number) => Math.round(v).toLocaleString('en-US');
const mib = (bytes: number | undefined) =>
  bytes === undefined ? 'n/a (no /proc)' : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const rowsPerSecond = (rows: number, runs: MethodRuns) => rows / median(runs.seconds);

/** The table of methods, the memory lines, and the ratio lines last. */
export function formatResults(rows: number, methods: readonly MethodRuns[], memory: MemoryResult): string {
  const by = (key: MethodRuns['key']) => methods.find((m) => m.key === key)!;
  const ratio = (a: MethodRuns['key'], b: MethodRuns['key']) =>
    (rowsPerSecond(rows, by(a)) / rowsPerSecond(rows, by(b))).toFixed(2);
  const table = methods.map((m) => {
    const cpu = m.key.startsWith('stratum') ? `${int(median(m.serverCpu))}%` : '-';
    const peak = m.key.startsWith('stratum') ? mib(Math.max(...m.serverPeakRss.map((b) => b ?? 0)) || undefined) : '-';
    return `| ${m.name} | ${int(rowsPerSecond(rows, m))} | ${median(m.seconds).toFixed(2)} | ${m.seconds.map((s) => s.toFixed(2)).join(', ')} | ${cpu} | ${peak} |`;
  });
  return [
    '| method | rows/s (median) | seconds (median) | seconds per run, in order | stratum server CPU (median, % of one core) | stratum server peak RSS |',
    '|---|---|---|---|---|---|',
    ...table,
    '',
    `stratum server process RSS: ${mib(memory.beforeBytes)} before the imports; peak ${mib(memory.smaller.peakBytes)} while importing ` +
      `${int(memory.smaller.rows)} rows, ${mib(memory.full.peakBytes)} while importing ${int(memory.full.rows)} rows ` +
      `(chunkSize=1000, first imports after start); high-water mark over the whole run (VmHWM): ${mib(memory.lifetimePeakBytes)}`,
    '',
    `ratio stratum/(psql \\copy) throughput: ${ratio('stratum', 'psql')}x (target >= 0.8x)`,
    '',
    `ratio stratum chunkSize=10000/(psql \\copy) throughput: ${ratio('stratumLargeChunks', 'psql')}x`,
    '',
    `ratio stratum/(multi-row INSERT) throughput: ${ratio('stratum', 'inserts')}x`,
  ].join('\n');
}
