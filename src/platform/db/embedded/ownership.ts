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
}

export type ClaimResult = { claimed: true } | { claimed: false; owner: OwnerRecord };

/** True when a process with this pid exists (signal 0 checks without sending anything). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, JSON.stringify(record));
      fs.closeSync(fd);
      return { claimed: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = readOwner(file);
    if (owner && isProcessAlive(owner.pid)) return { claimed: false, owner };
    // A dead owner, or a half-written record from one: remove it unless someone replaced it meanwhile.
    const again = readOwner(file);
    if (!again || again.pid === owner?.pid) fs.rmSync(file, { force: true });
  }
  throw new Error(`could not claim ${file}: it keeps changing`);
}

/** Records the port once the server listens, so attaching processes can find it. */
export function updateOwner(file: string, record: OwnerRecord): void {
  const tmp = `${file}.${record.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Gives ownership up, only if this process still holds it. */
export function releaseOwnership(file: string, pid: number): void {
  if (readOwner(file)?.pid === pid) fs.rmSync(file, { force: true });
}
