import fs from 'node:fs';
import type { Sql } from '../../src/platform/db/connect.ts';

/** Linux reports process times in clock ticks; 100 per second on every mainstream kernel build. */
const TICK_MS = 10;

interface ProcStat {
  cpuMs: number;
  ppid: number;
  comm: string;
  startTicks: string;
}

/** utime + stime of a process in ms, its parent and start time; undefined once it has gone. */
function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields after the last ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      cpuMs: (Number(fields[11]) + Number(fields[12])) * TICK_MS,
      ppid: Number(fields[1]),
      startTicks: fields[19]!,
      comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
    };
  } catch {
    return undefined;
  }
}

/** CPU time so far of each process of a PostgreSQL server, by pid and start time (a pid can be reused). */
export type PostgresCpuSample = Map<string, number>;

export interface PostgresCpu {
  sample(): PostgresCpuSample;
  /** Milliseconds of CPU the server's processes used between two samples. */
  between(a: PostgresCpuSample, b: PostgresCpuSample): number;
}

/**
 * The CPU time of a PostgreSQL server on this machine (the postmaster and every process it started), found
 * from the backend behind `sql`. Undefined where there is no /proc or the server runs elsewhere. A process
 * that exits between two samples takes its time since the first with it, so short-lived ones (parallel
 * workers, autovacuum) are undercounted; a pool's long-lived connections are counted in full.
 * @example const pg = await findPostgresCpu(sql); const a = pg.sample(); await load(); pg.between(a, pg.sample()) // 9_120
 */
export async function findPostgresCpu(sql: Sql): Promise<PostgresCpu | undefined> {
  const [row] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const postmaster = readStat(row!.pid)?.ppid;
  if (postmaster === undefined || !readStat(postmaster)?.comm.startsWith('postgres')) return undefined;
  return {
    sample() {
      const sample: PostgresCpuSample = new Map();
      for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const pid = Number(entry);
        const stat = readStat(pid);
        if (stat && (pid === postmaster || stat.ppid === postmaster))
          sample.set(`${pid}:${stat.startTicks}`, stat.cpuMs);
      }
      return sample;
    },
    between(a, b) {
      let total = 0;
      for (const [key, ms] of b) total += ms - (a.get(key) ?? 0);
      return total;
    },
  };
}
