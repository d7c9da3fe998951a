import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ToolsConfig } from '../../src/config/tools-config.ts';
import { createPool } from '../../src/platform/db/connect.ts';
import {
  clusterMembers,
  commandExists,
  etcdPid,
  findLeader,
  labLayout,
  LAB_SCOPE,
  patroniPid,
  portOpen,
  postgresBinDir,
  postgresCanUse,
  postmasterPid,
  startEtcd,
  startPatroni,
  stopProcess,
  SUPERUSER_PASSWORD,
  writeNodeConfig,
  type LabLayout,
  type LabNode,
  type Member,
} from './cluster.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const LAB_HELP = `usage: npm run tools -- lab up|down|status|kill-leader|kill-postgres|switchover

A three-node PostgreSQL cluster managed by Patroni (one etcd), on loopback, to try failover locally:
PostgreSQL on 127.0.0.1:5441-5443, Patroni's REST API on 127.0.0.1:8008-8010. Needs root (it installs
postgresql, patroni and etcd with apt-get when they are missing, and runs PostgreSQL as the postgres user).

  up            start what is not running, wait for a leader and two streaming replicas, print DATABASE_URL
  down          stop every process the lab started (by PID); the data stays in the lab directory
  status        each node's role, state, replication lag and PIDs
  kill-leader   kill -9 the leader's Patroni and postmaster (a node lost); \`lab up\` brings it back as a replica
  kill-postgres kill -9 the leader's postmaster only (Patroni restarts it, or fails over)
  switchover    hand the leadership to a replica (patronictl switchover)

The lab lives in $STRATUM_LAB_DIR, default $STRATUM_HOME/lab (STRATUM_HOME defaults to ./.stratum).`;

const PACKAGES = ['postgresql', 'patroni', 'etcd-server', 'etcd-client'];
const APP = { user: 'stratum', password: 'stratum', database: 'stratum' };
const READY_TIMEOUT_MS = 120_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The multi-host URL of the lab's application database: whichever node leads, the client finds it. */
export function labDatabaseUrl(layout: LabLayout): string {
  const hosts = layout.nodes.map((n) => `127.0.0.1:${n.pgPort}`).join(',');
  return `postgres://${APP.user}:${APP.password}@${hosts}/${APP.database}?target_session_attrs=primary`;
}

/** `npm run tools -- lab up|down|status|kill-leader|switchover` */
export async function runLab(args: string[], io: Io, lab: ToolsConfig['lab']): Promise<number> {
  const action = args[0];
  if (args.includes('--help') || args.includes('-h')) {
    io.out(LAB_HELP);
    return 0;
  }
  const layout = labLayout(lab.dir);
  const actions = { up, down, status, 'kill-leader': killLeader, 'kill-postgres': killPostgres, switchover };
  const run =
    action !== undefined && Object.hasOwn(actions, action) ? actions[action as keyof typeof actions] : undefined;
  if (!run) {
    io.err(LAB_HELP);
    return 2;
  }
  try {
    return await run(layout, io);
  } catch (error) {
    return refuse(io, `${action} failed: ${(error as Error)?.message ?? String(error)}`);
  }
}

/** Installs the Debian packages when a command is missing; refuses where it cannot. */
function ensurePackages(io: Io): string | undefined {
  const missing = ['etcd', 'etcdctl', 'patroni', 'patronictl', 'setpriv'].filter((c) => !commandExists(c));
  if (missing.length === 0 && postgresBinDir()) return postgresBinDir();
  if (process.getuid?.() !== 0) {
    io.err(
      `lab: ${missing.join(', ') || 'PostgreSQL'} missing, and installing it needs root: run as root, or install ${PACKAGES.join(' ')} first`,
    );
    return undefined;
  }
  if (!commandExists('apt-get')) {
    io.err(
      `lab: ${missing.join(', ') || 'PostgreSQL'} missing and there is no apt-get here: install ${PACKAGES.join(' ')} (PostgreSQL, Patroni 3, etcd 3) by other means`,
    );
    return undefined;
  }
  io.err(`lab: installing ${PACKAGES.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', ...PACKAGES]]) {
    const result = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (result.status !== 0) {
      io.err(`lab: apt-get ${args[0]} failed (exit ${result.status})`);
      return undefined;
    }
  }
  return postgresBinDir();
}

async function up(layout: LabLayout, io: Io): Promise<number> {
  if (process.getuid?.() !== 0) {
    io.err('lab: up needs root (it runs PostgreSQL as the postgres user and may install packages)');
    return 1;
  }
  const binDir = ensurePackages(io);
  if (!binDir) return 1;
  const started = Date.now();
  fs.mkdirSync(layout.dir, { recursive: true });
  fs.chmodSync(layout.dir, 0o755);

  if (etcdPid(layout) === undefined) {
    if (await portOpen(layout.etcd.clientPort))
      return refuse(io, `port ${layout.etcd.clientPort} is taken by a process the lab did not start`);
    io.err(`lab: starting etcd (pid ${startEtcd(layout)})`);
  }
  const template = fs.readFileSync(fileURLToPath(new URL('../../scripts/lab/patroni.yml', import.meta.url)), 'utf8');
  for (const node of layout.nodes) {
    if (patroniPid(node) !== undefined) continue;
    for (const port of [node.pgPort, node.restPort]) {
      if (await portOpen(port)) return refuse(io, `port ${port} is taken by a process the lab did not start`);
    }
    writeNodeConfig(layout, node, template, binDir);
    if (!postgresCanUse(node.dir))
      return refuse(
        io,
        `the postgres user cannot write in ${node.dir}; set STRATUM_LAB_DIR to a directory it can reach`,
      );
    io.err(`lab: starting ${node.name} (patroni pid ${startPatroni(node)})`);
  }

  const leader = await waitForStreamingReplicas(layout, io);
  if (!leader) {
    io.err(
      `lab: no leader with two streaming replicas within ${READY_TIMEOUT_MS / 1000} s; see ${layout.dir}/n*/patroni.log and \`npm run tools -- lab status\``,
    );
    return 1;
  }
  await createApplicationDatabase(leader);
  io.err(`lab: ready in ${((Date.now() - started) / 1000).toFixed(1)} s (leader ${leader.name})`);
  io.out(labDatabaseUrl(layout));
  return 0;
}

function refuse(io: Io, reason: string): number {
  io.err(`lab: ${reason}`);
  return 1;
}

/** Superuser connection to one node, for the lab's own checks and set-up. */
function superuserPool(node: LabNode, database = 'postgres') {
  return createPool(
    { host: '127.0.0.1', port: node.pgPort, user: 'postgres', password: SUPERUSER_PASSWORD, database },
    { max: 1, applicationName: 'stratum-lab', connectTimeoutSeconds: 2 },
  );
}

/**
 * Waits until a node leads, two replicas stream from it (as the leader's pg_stat_replication shows) and one
 * of them is the synchronous standby Patroni may promote: only then can the lab survive losing its leader.
 */
async function waitForStreamingReplicas(layout: LabLayout, io: Io): Promise<LabNode | undefined> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let said = '';
  while (Date.now() < deadline) {
    const leader = await findLeader(layout);
    if (leader) {
      const sql = superuserPool(leader);
      try {
        const [row] = await sql<{ n: number; sync: number }[]>`
          select count(*) filter (where state = 'streaming')::int as n, count(*) filter (where state = 'streaming' and sync_state = 'sync')::int as sync
          from pg_stat_replication`;
        const designated =
          (await clusterMembers(layout))?.some((m) => m.role === 'sync_standby' && m.state === 'running') ?? false;
        if (row!.n >= layout.nodes.length - 1 && row!.sync > 0 && designated) return leader;
        const line = `${leader.name} leads; ${row!.n} of ${layout.nodes.length - 1} replicas streaming, ${row!.sync > 0 && designated ? 'a' : 'no'} synchronous standby yet`;
        if (line !== said) io.err(`lab: ${(said = line)}`);
      } catch {
        // The leader is still starting: ask again.
      } finally {
        await sql.end({ timeout: 1 });
      }
    }
    await sleep(500);
  }
  return undefined;
}

/** The application role and database; max_prepared_transactions comes from the bootstrap configuration. */
async function createApplicationDatabase(leader: LabNode): Promise<void> {
  const sql = superuserPool(leader);
  try {
    const [role] = await sql`select 1 from pg_roles where rolname = ${APP.user}`;
    if (!role) await sql.unsafe(`create role ${APP.user} login createdb createrole password '${APP.password}'`);
    // Lets readiness read the replicas' lag in pg_stat_replication.
    await sql.unsafe(`grant pg_monitor to ${APP.user}`);
    const [db] = await sql`select 1 from pg_database where datname = ${APP.database}`;
    if (!db) await sql.unsafe(`create database ${APP.database} owner ${APP.user}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function down(layout: LabLayout, io: Io): Promise<number> {
  const leader = await findLeader(layout);
  const stopNode = async (node: LabNode): Promise<number> => {
    let stopped = 0;
    const pid = patroniPid(node);
    if (pid !== undefined) {
      // Patroni stops its PostgreSQL on SIGTERM.
      if (!(await stopProcess(pid, 'SIGTERM', 30_000))) await stopProcess(pid, 'SIGKILL', 5000);
      io.err(`lab: stopped ${node.name} (patroni pid ${pid})`);
      stopped++;
    }
    // A postmaster left behind by a Patroni that was killed: fast shutdown.
    const postmaster = postmasterPid(node);
    if (postmaster !== undefined && (await stopProcess(postmaster, 'SIGINT', 30_000))) {
      io.err(`lab: stopped ${node.name}'s postmaster (pid ${postmaster})`);
      stopped++;
    }
    return stopped;
  };
  // The replicas first (together), then the leader: no failover is started while the lab goes down.
  const counts = await Promise.all(layout.nodes.filter((n) => n !== leader).map(stopNode));
  let stopped = counts.reduce((a, b) => a + b, 0) + (leader ? await stopNode(leader) : 0);
  const etcd = etcdPid(layout);
  if (etcd !== undefined) {
    await stopProcess(etcd, 'SIGTERM', 10_000);
    io.err(`lab: stopped etcd (pid ${etcd})`);
    stopped++;
  }
  io.out(stopped === 0 ? 'the lab was not running' : `lab stopped; its data stays in ${layout.dir}`);
  return 0;
}

async function status(layout: LabLayout, io: Io): Promise<number> {
  const members = await clusterMembers(layout);
  io.out(`etcd: ${etcdPid(layout) !== undefined ? `running (pid ${etcdPid(layout)})` : 'not running'}`);
  for (const node of layout.nodes) {
    const m: Member | undefined = members?.find((x) => x.name === node.name);
    const lag =
      m?.role === 'leader' || m?.lag === undefined ? '' : `  lag ${m.lag === 'unknown' ? 'unknown' : `${m.lag} bytes`}`;
    const what = m
      ? `${m.role.padEnd(12)} ${m.state}${m.timeline !== undefined ? `  timeline ${m.timeline}` : ''}${lag}`
      : 'not running';
    io.out(
      `${node.name}  127.0.0.1:${node.pgPort}  ${what}  patroni pid ${patroniPid(node) ?? '-'}  postmaster pid ${postmasterPid(node) ?? '-'}`,
    );
  }
  if (members) io.out(`DATABASE_URL=${labDatabaseUrl(layout)}`);
  return 0;
}

async function killLeader(layout: LabLayout, io: Io): Promise<number> {
  const leader = await findLeader(layout);
  if (!leader) return refuse(io, 'no leader to kill (see `npm run tools -- lab status`)');
  const pids = [patroniPid(leader), postmasterPid(leader)].filter((p): p is number => p !== undefined);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  io.out(`killed ${leader.name} (pids ${pids.join(', ')}); \`npm run tools -- lab up\` brings it back as a replica`);
  return 0;
}

async function killPostgres(layout: LabLayout, io: Io): Promise<number> {
  const leader = await findLeader(layout);
  const pid = leader ? postmasterPid(leader) : undefined;
  if (!leader || pid === undefined)
    return refuse(io, 'no leader postmaster to kill (see `npm run tools -- lab status`)');
  process.kill(pid, 'SIGKILL');
  io.out(`killed the postmaster of ${leader.name} (pid ${pid}); its Patroni restarts it or lets a replica take over`);
  return 0;
}

async function switchover(layout: LabLayout, io: Io): Promise<number> {
  const leader = await findLeader(layout);
  const members = await clusterMembers(layout);
  if (!leader || !members) return refuse(io, 'no leader to switch over from (see `npm run tools -- lab status`)');
  // Under synchronous_mode only the synchronous standby may take over without losing a commit.
  const candidate =
    members.find((m) => m.role === 'sync_standby' && m.state === 'running') ??
    members.find((m) => m.name !== leader.name && m.state === 'running');
  if (!candidate) return refuse(io, 'no running replica to hand the leadership to');
  const result = spawnSync(
    'patronictl',
    [
      '-c',
      path.join(leader.dir, 'patroni.yml'),
      'switchover',
      LAB_SCOPE,
      '--leader',
      leader.name,
      '--candidate',
      candidate.name,
      '--force',
    ],
    { encoding: 'utf8' },
  );
  if (result.status !== 0)
    return refuse(io, `patronictl switchover failed: ${(result.stderr || result.stdout).trim()}`);
  const next = layout.nodes.find((n) => n.name === candidate.name)!;
  for (let waited = 0; waited < 30_000; waited += 250) {
    if ((await findLeader(layout)) === next) {
      io.out(`switched over from ${leader.name} to ${candidate.name}`);
      return 0;
    }
    await sleep(250);
  }
  return refuse(io, `${candidate.name} did not become the leader within 30 s`);
}
