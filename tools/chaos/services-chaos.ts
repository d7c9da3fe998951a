import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededAccountId } from '../../src/contexts/accounts/seed-ids.ts';
import type { ReportWindow } from '../loadtest/html-report.ts';
import { openHttpTarget, type HttpTarget } from '../loadtest/http-target.ts';
import { startProgress, tallySample, type ProgressOutput } from '../loadtest/progress.ts';
import { createRandom } from '../loadtest/random.ts';
import { runOpenModel } from '../loadtest/run-open-model.ts';
import { createScenario } from '../loadtest/scenarios.ts';
import { createTally, type Tally } from '../loadtest/tally.ts';
import { firstSampleAt, watchRotation, type RotationWatch } from './rotation-watch.ts';
import { describeFaults, planServiceFaults, type ServicesFault } from './service-fault-plan.ts';
import { createServiceLandscape, guardProcesses, planServices } from './service-processes.ts';
import { freePort, seedAccounts } from './services-setup.ts';
import { analyzeServicesRun, type FaultEvents, type RequestRecord } from './service-windows.ts';
import type { ServicesChaosReport } from './services-report.ts';

type Env = Record<string, string | undefined>;

export interface ServicesChaosOptions {
  fault: ServicesFault;
  rate: number;
  durationS: number;
  rampS: number;
  /** Seeded accounts the reads address (`stratum seed accounts --count N` runs first). */
  accounts: number;
  /** When the first fault strikes, and how long each lasts. */
  atS: number;
  forS: number;
  images: number;
  quotes: number;
  /** The gateway's port, the other services on the ports after it; undefined: free ports. */
  port: number | undefined;
  timeoutS: number;
  /** The environment the services start from (DATABASE_URL, STRATUM_HOME, timeouts). */
  env: Env;
  /** What the services run on, for the report: `embedded` or `DATABASE_URL`. */
  database: string;
  /** How long a service may take to stop after SIGTERM. */
  graceMs: number;
  /** Every line the services write goes to this file, prefixed with the service's name. */
  logFile: string | undefined;
}

/** A services run: its report, and what its HTML report charts. */
export interface ServicesChaosRun {
  report: ServicesChaosReport;
  tally: Tally;
  windows: ReportWindow[];
  startedAt: Date;
}

const POLL_MS = 100;
/** How long after the load the rotation is still watched for an instance not yet seen back. */
const LINGER_MS = 6000;

const degradedOf = (body: unknown): string[] => {
  const degraded = (body as { degraded?: unknown } | null | undefined)?.degraded;
  return Array.isArray(degraded) ? degraded.filter((d): d is string => typeof d === 'string') : [];
};

/** The `msg` of a service's JSON log line, or the line. */
const messageOf = (line: string): string => {
  try {
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof msg === 'string' ? msg : line;
  } catch {
    return line;
  }
};

/**
 * The split accounts landscape started on loopback (accounts-data, images and quotes instances, the gateway), the
 * accounts seeded, then the accounts-read load against the gateway while the plan's instances are SIGKILLed and
 * started again on their ports; the gateway's /readyz polled every 100 ms meanwhile. Every service is stopped at
 * the end, on a failure or on Ctrl-C too. A progress line goes to `output` while the load runs.
 */
export async function runServicesChaos(
  options: ServicesChaosOptions,
  say: (line: string) => void,
  output: ProgressOutput = { tty: false, write: say },
): Promise<ServicesChaosRun> {
  const count = options.images + options.quotes + 2;
  const ports =
    options.port === undefined
      ? await Promise.all(Array.from({ length: count }, () => freePort()))
      : [...Array.from({ length: count - 1 }, (_, i) => options.port! + 1 + i), options.port];
  const specs = planServices(ports, options.images, options.quotes);
  const names = (role: string) => specs.filter((s) => s.role === role).map((s) => s.name);
  const faults = planServiceFaults(options.fault, {
    atS: options.atS,
    forS: options.forS,
    quotes: names('quotes'),
    images: names('images'),
  });
  const log = options.logFile ? fs.createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  const tails = new Map<string, string[]>();
  let note = say;
  const env = { ...options.env, LOG_LEVEL: options.env.LOG_LEVEL ?? 'warn' };
  const landscape = createServiceLandscape({
    specs,
    env,
    graceMs: options.graceMs,
    onLine(name, line) {
      log?.write(`${name} | ${line}\n`);
      const tail = tails.get(name) ?? [];
      tail.push(line);
      if (tail.length > 20) tail.shift();
      tails.set(name, tail);
      const msg = messageOf(line);
      if (/in rotation|out of rotation/.test(msg)) note(`${name}: ${msg}`);
    },
  });
  const unguard = guardProcesses(landscape, say);
  const gatewayName = names('accounts')[0]!;
  const gateway = new URL(landscape.url(gatewayName));
  let watch: RotationWatch | undefined;
  let http: HttpTarget | undefined;
  try {
    say(`chaos services: starting ${specs.length} services on 127.0.0.1 (database: ${options.database})`);
    try {
      await landscape.start();
    } catch (error) {
      for (const [name, lines] of tails) if (landscape.pids()[name] === undefined) say(`${name}: ${lines.join('\n')}`);
      throw error;
    }
    const pids = landscape.pids();
    for (const s of specs) say(`chaos services: ${s.name.padEnd(15)} ${landscape.url(s.name)} (pid ${pids[s.name]})`);
    say(`chaos services: ${await seedAccounts(options.accounts, env)}`);
    const probe = await fetch(`${gateway.origin}/accounts/${seededAccountId(0)}`);
    if (probe.status !== 200) throw new Error(`GET /accounts/:id through the gateway answered ${probe.status}`);
    await probe.arrayBuffer();
    say(`chaos services: ${describeFaults(faults)}`);

    const scenario = createScenario('accounts-read', { accounts: options.accounts, customers: 1, runTag: 'chaos' });
    const tally = createTally(scenario.kinds);
    http = openHttpTarget(gateway, 1000, options.timeoutS * 1000);
    const records: RequestRecord[] = [];
    let degradedCount = 0;
    const inner = http;
    const startedAt = new Date();
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    const recording: HttpTarget = {
      async send(plan, scheduledAt) {
        let degraded: string[] = [];
        const outcome = await inner.send({ ...plan, onAnswer: (a) => (degraded = degradedOf(a.body)) }, scheduledAt);
        if (!outcome.ok) degraded = [];
        if (degraded.length > 0) degradedCount++;
        for (const part of degraded) tally.timeline.count(`degraded ${part}`, 1);
        records.push({ atS: (scheduledAt - t0) / 1000, ok: outcome.ok, latencyMs: outcome.latencyMs, degraded });
        return outcome;
      },
      close: () => inner.close(),
    };
    const urlNames = new Map(specs.map((s) => [landscape.url(s.name), s.name]));
    watch = watchRotation(gateway, urlNames, t0, POLL_MS);
    const progress = startProgress(
      'chaos',
      () => ({ ...tallySample(tally, options.durationS), extra: `degraded ${degradedCount}` }),
      output,
      say,
    );
    note = (line) => progress.log(`t=${seconds().toFixed(1)} s: ${line}`);
    const events: FaultEvents[] = [];
    const applyFaults = async () => {
      for (const fault of faults) {
        await sleep(Math.max(0, fault.killAtS * 1000 - (performance.now() - t0)));
        const killedAtS = seconds();
        const killed = await Promise.all(fault.targets.map((t) => landscape.kill(t)));
        note(`SIGKILL ${fault.targets.map((t, i) => `${t} (pid ${killed[i]})`).join(', ')}`);
        await sleep(Math.max(0, fault.restartAtS * 1000 - (performance.now() - t0)));
        const restartedAtS = seconds();
        note(`restarting ${fault.targets.join(', ')} on the same port${fault.targets.length > 1 ? 's' : ''}`);
        const listeningAtS: Record<string, number | null> = {};
        await Promise.all(
          fault.targets.map((t) =>
            landscape.restart(t).then(
              ({ pid, listeningAt }) => {
                listeningAtS[t] = (listeningAt - t0) / 1000;
                note(`${t} listening again (pid ${pid})`);
              },
              (error: Error) => {
                listeningAtS[t] = null;
                note(`${t} did not start again: ${error.message}`);
              },
            ),
          ),
        );
        events.push({ fault, killedAtS, restartedAtS, listeningAtS });
      }
    };
    const faulting = applyFaults();
    faulting.catch(() => {}); // awaited after the load, which runs on whatever happens to the faults
    try {
      await runOpenModel(scenario, recording, createRandom(1), {
        profile: { rate: options.rate, ramp: options.rampS, duration: options.durationS },
        maxInFlight: 1000,
        tally,
      });
      await faulting;
      // An instance that listened near the end may be put back just after: watch a little longer for it.
      const until = performance.now() + LINGER_MS;
      const pending = () =>
        events.some((e) =>
          e.fault.targets.some((t) => {
            const at = e.listeningAtS[t];
            return at != null && firstSampleAt(watch!.samples, at, [t], true) === null;
          }),
        );
      while (pending() && performance.now() < until) await sleep(POLL_MS);
    } finally {
      progress.stop();
      note = say;
    }
    await watch.stop();
    const samples = watch.samples;
    watch = undefined;

    let sent = 0;
    let answered = 0;
    let failed = 0;
    for (const k of Object.values(tally.kinds)) {
      sent += k.scheduled;
      answered += k.completed;
      failed += k.failed;
    }
    const failedByCode: Record<string, number> = {};
    for (const f of tally.failures.values()) {
      const key = f.status === null ? f.code : `${f.status} ${f.code}`;
      failedByCode[key] = (failedByCode[key] ?? 0) + f.count;
    }
    const analysis = analyzeServicesRun({
      fault: options.fault,
      rampS: options.rampS,
      durationS: options.durationS,
      records,
      events,
      samples,
      failed,
    });
    const roles = (role: string) => names(role).length;
    const report: ServicesChaosReport = {
      fault: options.fault,
      faults: describeFaults(faults),
      scenario: scenario.name,
      rate: options.rate,
      rampS: options.rampS,
      durationS: options.durationS,
      accounts: options.accounts,
      gateway: gateway.origin,
      services: `gateway x${roles('accounts')}, accounts-data x${roles('accounts-data')}, images x${roles('images')}, quotes x${roles('quotes')}`,
      database: options.database,
      requestsSent: sent,
      requestsAnswered: answered,
      answeredByStatus: tally.timeline.statusesByKind()[scenario.kinds[0]!] ?? {},
      requestsFailed: failed,
      failedByCode,
      readyzSamples: samples.length,
      ...analysis,
      held: analysis.checks.every((c) => c.held),
    };
    const windows: ReportWindow[] = analysis.windows.map((w) => ({ label: w.label, fromS: w.killedAtS, toS: w.toS }));
    const after = analysis.afterBreakerOpened;
    if (after) windows.push({ label: 'breaker open to restart', fromS: after.fromS, toS: after.toS });
    return { report, tally, windows, startedAt };
  } finally {
    await watch?.stop();
    await http?.close();
    await landscape.stop();
    unguard();
    say('chaos services: every service stopped');
    await new Promise<void>((resolve) => (log ? log.end(resolve) : resolve()));
  }
}
