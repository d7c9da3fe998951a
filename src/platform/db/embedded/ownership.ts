import fs from 'node:fs';

/**
 * Who runs the embedded server of one STRATUM_HOME. The file is created exclusively (O_EXCL), so exactly
 * one process owns the server; the others read it to find the port and attach.
 */
export interface OwnerRecord {
  pid: number;
  /** `serve` keeps the server for as long as it runs; `command` starts it for one CLI command. */
  role: 'serve' | 'command';
  port: number;
  startedAt: string;
  /** The kernel's start time of `pid` (Linux), so a reused pid is not mistaken for the owner. */
  pidStart?: string;
}

export type ClaimResult = { claimed: true } | { claimed: false; owner: OwnerRecord };

/** The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), where there is /proc. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True when a process with this pid exists (signal 0 checks without sending anything). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the record's process still runs: same pid, same start time, and not this process's own pid. */
export function isOwnerAlive(record: OwnerRecord): boolean {
  if (record.pid === process.pid) return false; // a record from an earlier life of a reused pid
  if (!isProcessAlive(record.pid)) return false;
  const started = processStartTime(record.pid);
  return record.pidStart === undefined || started === undefined || started === record.pidStart;
}

/** Who owns the server of a home, read from its owner file; undefined when nobody does or it is unreadable. */
export function readOwner(file: string): OwnerRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

/**
 * Tries to become the owner. A record left by a dead process is removed and the claim tried again.
 * @example const r = claimOwnership(file, { pid: process.pid, role: 'serve', port: 0, startedAt: new Date().toISOString() });
 */
export function claimOwnership(file: string, record: OwnerRecord): ClaimResult {
  for (let tries = 0; tries < 5; tries++) {
    // Written whole to a private file, then linked into place: link() fails if the name exists, and nobody can
    // ever read a half-written record.
    const tmp = `${file}.${process.pid}.claim`;
    fs.writeFileSync(tmp, JSON.stringify({ ...record, pidStart: record.pidStart ?? processStartTime(record.pid) }), {
      mode: 0o600,
    });
    try {
      fs.linkSync(tmp, file);
      return { claimed: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    const owner = readOwner(file);
    if (owner && isOwnerAlive(owner)) return { claimed: false, owner };
    // A dead owner (or an unreadable record): remove it unless someone replaced it meanwhile.
    const again = readOwner(file);
    if (!again || again.pid === owner?.pid) fs.rmSync(file, { force: true });
  }
  throw new Error(`could not claim ${file}: it keeps changing`);
}

/** Records the port once the server listens, so attaching processes can find it. */
export function updateOwner(file: string, record: OwnerRecord): void {
  const tmp = `${file}.${record.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...record, pidStart: record.pidStart ?? processStartTime(record.pid) }), {
    mode: 0o600,
  });
  fs.renameSync(tmp, file);
}

/** Gives ownership up, only if this process still holds it. */
export function releaseOwnership(file: string, pid: number): void {
  if (readOwner(file)?.pid === pid) fs.rmSync(file, { force: true });
}
