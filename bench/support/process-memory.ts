import fs from 'node:fs';

/** A process's resident memory now and its high-water mark since it started, in bytes. */
export interface ProcessMemory {
  rssBytes: number;
  /** VmHWM: the most it has held resident at any moment so far. */
  peakRssBytes: number;
}

/**
 * VmRSS and VmHWM of a process from /proc/<pid>/status; undefined where there is no /proc (not Linux) or
 * once the process has gone.
 * @example readProcessMemory(server.pid) // { rssBytes: 98_304_000, peakRssBytes: 131_072_000 }
 */
export function readProcessMemory(pid: number): ProcessMemory | undefined {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  const rssBytes = kib('VmRSS');
  const peakRssBytes = kib('VmHWM');
  return Number.isNaN(rssBytes) || Number.isNaN(peakRssBytes) ? undefined : { rssBytes, peakRssBytes };
}

/**
 * Samples a process's RSS every `intervalMs` until `stop()`, which returns the highest value seen (bytes), so
 * the peak of one operation can be told apart from the lifetime high-water mark.
 * @example const peak = sampleRssPeak(pid); await work(); peak.stop() // 120_586_240
 */
export function sampleRssPeak(pid: number, intervalMs = 20): { stop(): number | undefined } {
  let peak: number | undefined;
  const sample = () => {
    const rss = readProcessMemory(pid)?.rssBytes;
    if (rss !== undefined && (peak === undefined || rss > peak)) peak = rss;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
