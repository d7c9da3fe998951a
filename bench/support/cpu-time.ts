import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

/** CPU time used so far, in milliseconds: by this process, by another one, and by the whole machine. */
export interface CpuSample {
  wallMs: number;
  selfMs: number;
  /** Undefined where /proc is not there to ask (not Linux). */
  otherMs: number | undefined;
  machineBusyMs: number;
  machineTotalMs: number;
}

/** Linux reports process times in clock ticks; 100 per second on every mainstream kernel build. */
const TICK_MS = 10;

/**
 * Takes a sample; `other` is the process to watch besides this one (e.g. the server under load), or several whose
 * times are added up (a deployment of several processes).
 */
export function sampleCpu(other: number | readonly number[]): CpuSample {
  const self = process.cpuUsage();
  const cpus = os.cpus();
  const total = cpus.reduce(
    (sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle,
    0,
  );
  const idle = cpus.reduce((sum, c) => sum + c.times.idle, 0);
  return {
    wallMs: performance.now(),
    selfMs: (self.user + self.system) / 1000,
    otherMs: processesCpuMs(typeof other === 'number' ? [other] : other),
    machineBusyMs: total - idle,
    machineTotalMs: total,
  };
}

/**
 * Utilisation between two samples: `self` and `other` in percent of one core (200% = two cores busy),
 * `machine` in percent of all cores.
 * @example const before = sampleCpu(pid); await work(); cpuBetween(before, sampleCpu(pid)) // { self: 97, other: 100, machine: 99 }
 */
export function cpuBetween(a: CpuSample, b: CpuSample): { self: number; other: number | undefined; machine: number } {
  const wall = b.wallMs - a.wallMs;
  return {
    self: (100 * (b.selfMs - a.selfMs)) / wall,
    other: a.otherMs === undefined || b.otherMs === undefined ? undefined : (100 * (b.otherMs - a.otherMs)) / wall,
    machine: (100 * (b.machineBusyMs - a.machineBusyMs)) / (b.machineTotalMs - a.machineTotalMs),
  };
}

function processesCpuMs(pids: readonly number[]): number | undefined {
  let total = 0;
  for (const pid of pids) {
    const ms = processCpuMs(pid);
    if (ms === undefined) return undefined;
    total += ms;
  }
  return total;
}

function processCpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}
