import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

/** One Patroni-managed PostgreSQL node of the lab, on loopback. */
export interface LabNode {
  name: string;
  pgPort: number;
  restPort: number;
  dir: string;
}

/** Where everything of one lab lives, and its fixed loopback ports. */
export interface LabLayout {
  dir: string;
  etcd: { clientPort: number; peerPort: number; dataDir: string; pidFile: string; logFile: string };
  nodes: LabNode[];
}

export const LAB_SCOPE = 'stratum-lab';
export const SUPERUSER_PASSWORD = 'lab-superuser';

export function labLayout(dir: string): LabLayout {
  return {
    dir,
    etcd: {
      clientPort: 2379,
      peerPort: 2380,
      dataDir: path.join(dir, 'etcd'),
      pidFile: path.join(dir, 'etcd.pid'),
      logFile: path.join(dir, 'etcd.log'),
    },
    nodes: [1, 2, 3].map((n) => ({
      name: `n${n}`,
      pgPort: 5440 + n,
      restPort: 8007 + n,
      dir: path.join(dir, `n${n}`),
    })),
  };
}

/** A member as Patroni's REST API describes it (`GET /cluster`). */
export interface Member {
  name: string;
  role: string;
  state: string;
  host: string;
  port: number;
  timeline?: number;
  lag?: number | string;
}

export function commandExists(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** The newest PostgreSQL server binaries Debian installed, or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs
    .readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(root, v, 'bin', 'postgres')));
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest ? path.join(root, newest, 'bin') : undefined;
}

/** The command line of a live process, or undefined when there is none with that PID. */
function commandLine(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** The PID in `pidFile` when that process is alive and its command line contains `marker` (so a reused PID is never ours). */
export function livePid(pidFile: string, marker: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]!.trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const cmd = commandLine(pid);
  return cmd !== undefined && cmd.includes(marker) ? pid : undefined;
}

/** The PID of a node's postmaster (first line of postmaster.pid), when it runs. */
export function postmasterPid(node: LabNode): number | undefined {
  return livePid(path.join(node.dir, 'data', 'postmaster.pid'), 'postgres');
}

export function patroniPid(node: LabNode): number | undefined {
  return livePid(path.join(node.dir, 'patroni.pid'), path.join(node.dir, 'patroni.yml'));
}

export function etcdPid(layout: LabLayout): number | undefined {
  return livePid(layout.etcd.pidFile, layout.etcd.dataDir);
}

/** Starts a detached process in its own session, its output appended to `logFile`; returns its PID. */
function startDetached(command: string, args: string[], logFile: string, cwd: string): number {
  const log = fs.openSync(logFile, 'a');
  try {
    const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', log, log] });
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    child.unref();
    return child.pid;
  } finally {
    fs.closeSync(log);
  }
}

export function startEtcd(layout: LabLayout): number {
  const { clientPort, peerPort, dataDir, pidFile, logFile } = layout.etcd;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const pid = startDetached(
    'etcd',
    [
      '--name',
      'e1',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `e1=${peer}`,
    ],
    logFile,
    layout.dir,
  );
  fs.writeFileSync(pidFile, `${pid}\n`);
  return pid;
}

/** Writes the node's patroni.yml from scripts/lab/patroni.yml; the node directory belongs to the postgres user. */
export function writeNodeConfig(layout: LabLayout, node: LabNode, template: string, binDir: string): void {
  fs.mkdirSync(node.dir, { recursive: true, mode: 0o700 });
  const fields: Record<string, string> = {
    NAME: node.name,
    REST_PORT: String(node.restPort),
    PG_PORT: String(node.pgPort),
    NODE_DIR: node.dir,
    BIN_DIR: binDir,
    ETCD_PORT: String(layout.etcd.clientPort),
    SUPERUSER_PASSWORD,
  };
  const yaml = template.replace(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
    const value = fields[key];
    if (value === undefined) throw new Error(`scripts/lab/patroni.yml: unknown field {{${key}}}`);
    return value;
  });
  fs.writeFileSync(path.join(node.dir, 'patroni.yml'), yaml, { mode: 0o600 });
  spawnSync('chown', ['-R', 'postgres:postgres', node.dir], { stdio: 'inherit' });
}

/** True when the postgres user can write in the node directory (every parent must be searchable by it). */
export function postgresCanUse(dir: string): boolean {
  return (
    spawnSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', 'test', '-w', dir], {
      stdio: 'ignore',
    }).status === 0
  );
}

/** Patroni runs as the postgres user; setpriv execs it, so the recorded PID is Patroni's own. */
export function startPatroni(node: LabNode): number {
  const pid = startDetached(
    'setpriv',
    ['--reuid=postgres', '--regid=postgres', '--init-groups', 'patroni', path.join(node.dir, 'patroni.yml')],
    path.join(node.dir, 'patroni.out'),
    node.dir,
  );
  fs.writeFileSync(path.join(node.dir, 'patroni.pid'), `${pid}\n`);
  return pid;
}

export function portOpen(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** GET without keep-alive (a pooled socket would hold the CLI process open for seconds after its work). */
function getJson(url: string, timeoutMs = 1000): Promise<{ status: number; body: unknown } | undefined> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** The cluster as the first Patroni that answers sees it, or undefined when none answers. */
export async function clusterMembers(layout: LabLayout): Promise<Member[] | undefined> {
  for (const node of layout.nodes) {
    const res = await getJson(`http://127.0.0.1:${node.restPort}/cluster`);
    const members = (res?.body as { members?: Member[] } | undefined)?.members;
    if (res?.status === 200 && Array.isArray(members)) return members;
  }
  return undefined;
}

/** The node whose Patroni says it is the running primary (`GET /primary` answers 200 only there). */
export async function findLeader(layout: LabLayout): Promise<LabNode | undefined> {
  const answers = await Promise.all(layout.nodes.map((n) => getJson(`http://127.0.0.1:${n.restPort}/primary`)));
  return layout.nodes.find((_, i) => answers[i]?.status === 200);
}

/** Sends `signal` to `pid` and waits up to `timeoutMs` for it to be gone; true when it is. */
export async function stopProcess(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, signal);
  } catch {
    return true;
  }
  for (let waited = 0; waited < timeoutMs; waited += 100) {
    if (commandLine(pid) === undefined || isZombie(pid)) return true;
    await new Promise<void>((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
