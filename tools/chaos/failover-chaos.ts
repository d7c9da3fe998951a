import { performance } from 'node:perf_hooks';
import type { ToolsConfig } from '../../src/config/tools-config.ts';
import { createPool } from '../../src/platform/db/connect.ts';
import type { ReportWindow } from '../loadtest/html-report.ts';
import { openHttpTarget, type HttpTarget } from '../loadtest/http-target.ts';
import { startProgress, tallySample, type ProgressOutput } from '../loadtest/progress.ts';
import { createRandom } from '../loadtest/random.ts';
import type { ReadBackResult } from '../loadtest/read-back.ts';
import { runOpenModel } from '../loadtest/run-open-model.ts';
import { createScenario } from '../loadtest/scenarios.ts';
import { createTally, type Tally } from '../loadtest/tally.ts';
import { runLab } from '../lab/command.ts';

export type FailoverFault = 'kill-leader' | 'kill-postgres' | 'switchover';

export interface FailoverChaosOptions {
  url: URL;
  rate: number;
  duration: number;
  fault: FailoverFault;
  faultAt: number;
  /** The cluster's multi-host URL: acknowledged writes are checked on whichever node is primary afterwards. */
  databaseUrl: string;
  accounts: number;
  timeoutS: number;
  /** The lab the fault is applied through. */
  lab: ToolsConfig['lab'];
}

export interface FailoverChaosReport {
  scenario: string;
  fault: string;
  faultAtS: number;
  rate: number;
  durationS: number;
  requestsSent: number;
  requestsFailed: number;
  failedByCode: Record<string, number>;
  acknowledgedWrites: number;
  acknowledgedWritesMissing: number;
  readBackLost: number;
  maxLatencyMs: number;
  /** Longest time without a successful write completing, from a second before the fault to the end of the load. */
  writeStallMs: number;
  faultOutput: string;
}

/** A failover run: its report, and what its HTML report charts. */
export interface FailoverChaosRun {
  report: FailoverChaosReport;
  /** Every request of the load, per kind and per second. */
  tally: Tally;
  /** The fault (from the lab command's start to its end) and the longest write stall, in seconds from the start. */
  windows: ReportWindow[];
  startedAt: Date;
}

interface Completion {
  at: number;
  kind: string;
  ok: boolean;
}

/**
 * The accounts-mixed load (creations carry Idempotency-Keys) against a running stratum on the lab cluster, the
 * fault applied at `faultAt` seconds through the lab, then every acknowledged creation looked up on the new
 * primary, and the read-back through the API. Measures failures by code, missing writes, latency and the stall.
 * A progress line goes to `output` while the load runs (by default one line to `say` every 5 s).
 */
export async function runFailoverChaos(
  options: FailoverChaosOptions,
  say: (line: string) => void,
  output: ProgressOutput = { tty: false, write: say },
): Promise<FailoverChaosRun> {
  const scenario = createScenario('accounts-mixed', {
    accounts: options.accounts,
    customers: 1000,
    runTag: `chaos${Date.now().toString(36)}`,
  });
  const http = openHttpTarget(options.url, 4000, options.timeoutS * 1000);
  const completions: Completion[] = [];
  const tally = createTally(scenario.kinds);
  const progress = startProgress('chaos', () => tallySample(tally, options.duration), output, say);
  const startedAt = new Date();
  const start = performance.now();
  let maxLatencyMs = 0;
  const recording: HttpTarget = {
    async send(plan, scheduledAt) {
      const outcome = await http.send(plan, scheduledAt);
      completions.push({ at: performance.now() - start, kind: plan.kind, ok: outcome.ok });
      if (outcome.latencyMs !== null) maxLatencyMs = Math.max(maxLatencyMs, outcome.latencyMs);
      return outcome;
    },
    close: () => http.close(),
  };
  let faultOutput = '';
  let faultFromS = options.faultAt;
  let faultToS = options.faultAt;
  const fault = (async () => {
    await new Promise((r) => setTimeout(r, options.faultAt * 1000));
    faultFromS = (performance.now() - start) / 1000;
    progress.log(`t=${options.faultAt} s: lab ${options.fault}`);
    const lines: string[] = [];
    const code = await runLab([options.fault], { out: (l) => lines.push(l), err: (l) => lines.push(l) }, options.lab);
    faultToS = (performance.now() - start) / 1000;
    faultOutput = lines.join(' ');
    progress.log(`lab ${options.fault}: ${faultOutput}${code === 0 ? '' : ` (exit ${code})`}`);
  })();
  let readBack: ReadBackResult | null = null;
  try {
    try {
      await runOpenModel(scenario, recording, createRandom(1), {
        profile: { rate: options.rate, ramp: 0, duration: options.duration },
        maxInFlight: 4000,
        tally,
      });
    } finally {
      progress.stop();
    }
    await fault;
    readBack = scenario.readBack ? await scenario.readBack(http) : null;
  } finally {
    await recording.close();
  }
  const created = scenario.createdAccountIds?.() ?? [];
  const sql = createPool(
    { url: options.databaseUrl },
    { max: 1, applicationName: 'stratum-chaos-verify', connectTimeoutSeconds: 10 },
  );
  let missing = 0;
  try {
    const found = await sql<
      { n: number }[]
    >`select count(*)::int as n from accounts.accounts where id = any(${created as string[]}::uuid[])`;
    missing = created.length - found[0]!.n;
  } finally {
    await sql.end({ timeout: 5 });
  }
  const failedByCode: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  for (const kind of Object.values(tally.kinds)) {
    sent += kind.scheduled;
    failed += kind.failed;
  }
  for (const group of tally.failures.values()) failedByCode[group.code] = (failedByCode[group.code] ?? 0) + group.count;
  const writes = completions
    .filter((c) => c.ok && (c.kind === 'create' || c.kind === 'update'))
    .map((c) => c.at)
    .sort((a, b) => a - b);
  const from = (options.faultAt - 1) * 1000;
  let stall = 0;
  let stallFrom = from;
  let previous = from;
  for (const at of writes.filter((w) => w >= from)) {
    if (at - previous > stall) [stall, stallFrom] = [at - previous, previous];
    previous = at;
  }
  // Up to the end of the load too: a server that stopped answering for good stalled until the end.
  if (options.duration * 1000 - previous > stall) [stall, stallFrom] = [options.duration * 1000 - previous, previous];
  const report: FailoverChaosReport = {
    scenario: scenario.name,
    fault: options.fault,
    faultAtS: options.faultAt,
    rate: options.rate,
    durationS: options.duration,
    requestsSent: sent,
    requestsFailed: failed,
    failedByCode,
    acknowledgedWrites: created.length,
    acknowledgedWritesMissing: missing,
    readBackLost: readBack?.lost.length ?? 0,
    maxLatencyMs: Math.round(maxLatencyMs),
    writeStallMs: Math.round(stall),
    faultOutput,
  };
  const windows: ReportWindow[] = [
    { label: `lab ${options.fault}`, fromS: faultFromS, toS: faultToS },
    { label: 'longest write stall', fromS: stallFrom / 1000, toS: (stallFrom + stall) / 1000 },
  ];
  return { report, tally, windows, startedAt };
}

export function printFailoverReport(report: FailoverChaosReport, out: (line: string) => void): void {
  out(`scenario                       ${report.scenario} at ${report.rate} req/s for ${report.durationS} s`);
  out(`fault                          ${report.fault} at ${report.faultAtS} s (${report.faultOutput})`);
  out(`requests sent                  ${report.requestsSent}`);
  out(
    `requests failed                ${report.requestsFailed}${
      report.requestsFailed > 0
        ? ` (${Object.entries(report.failedByCode)
            .map(([c, n]) => `${c}: ${n}`)
            .join(', ')})`
        : ''
    }`,
  );
  out(`acknowledged writes            ${report.acknowledgedWrites} creations`);
  out(
    `acknowledged writes missing    ${report.acknowledgedWritesMissing} (on the primary after the fault); read back lost: ${report.readBackLost}`,
  );
  out(`max latency                    ${report.maxLatencyMs} ms`);
  out(`write stall                    ${report.writeStallMs} ms`);
}
