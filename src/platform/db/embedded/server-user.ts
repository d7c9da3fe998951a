import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

/** The OS user the PostgreSQL server runs as. `undefined` ids mean "the current user". */
export interface ServerUser {
  name: string;
  uid?: number;
  gid?: number;
}

const SYSTEM_USER = 'postgres';

/**
 * PostgreSQL refuses to run as root. As root, the server runs as the `postgres` system user, created
 * here when missing; as anyone else, it runs as that user.
 * @example const user = resolveServerUser(); // { name: 'postgres', uid: 101, gid: 104 } when root
 */
export function resolveServerUser(): ServerUser {
  const me = os.userInfo();
  if (me.uid !== 0) return { name: me.username };
  let ids = lookupIds(SYSTEM_USER);
  if (!ids) {
    try {
      execFileSync(
        'useradd',
        ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SYSTEM_USER],
        { stdio: 'pipe' },
      );
    } catch (error) {
      throw new Error(
        `running as root, PostgreSQL needs a "${SYSTEM_USER}" user and useradd failed: ${(error as Error).message}`,
      );
    }
    ids = lookupIds(SYSTEM_USER);
    if (!ids) throw new Error(`created the "${SYSTEM_USER}" user but cannot find it`);
  }
  return { name: SYSTEM_USER, ...ids };
}

function lookupIds(name: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** True when `user` may search (enter) `dir` and write in it: what PostgreSQL needs of its data parent. */
export function canUseDirectory(user: ServerUser, dir: string): boolean {
  if (user.uid === undefined) {
    try {
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }
  const probe = spawnSync('test', ['-w', dir, '-a', '-x', dir], { uid: user.uid, gid: user.gid });
  return probe.status === 0;
}

/** True when `user` may execute `file` (every directory above it must be searchable too). */
export function canExecute(user: ServerUser, file: string): boolean {
  if (user.uid === undefined) return true;
  return spawnSync('test', ['-x', file], { uid: user.uid, gid: user.gid }).status === 0;
}

/** Gives `user` a directory it owns alone (mode 0700), creating it if needed. */
export function ensureOwnedDirectory(user: ServerUser, dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (user.uid !== undefined) fs.chownSync(dir, user.uid, user.gid!);
  fs.chmodSync(dir, 0o700);
}
