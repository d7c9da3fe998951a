import { percentile } from '../loadtest/percentiles.ts';
import { firstSampleAt, longestGapMs, type RotationSample } from './rotation-watch.ts';
import type { PlannedFault, ServicesFault } from './service-fault-plan.ts';

/** One request of the load as the analysis sees it. */
export interface RequestRecord {
  /** When it was due, in seconds from the start of the load: what decides the window it belongs to. */
  atS: number;
  /** Answered with the expected status (200) and a body that parsed. */
  ok: boolean;
  /** From when it was due to the end of its answer; null when no answer came. */
  latencyMs: number | null;
  /** The answer's `degraded` list (empty when whole, or when no answer came). */
  degraded: readonly string[];
}

/** What the run did for one planned fault, in seconds from the start of the load. */
export interface FaultEvents {
  fault: PlannedFault;
  /** When the SIGKILLs were sent. */
  killedAtS: number;
  /** When the new processes were spawned. */
  restartedAtS: number;
  /** Per target: when its new process said it listens; null when it never did. */
  listeningAtS: Record<string, number | null>;
}

export interface LatencyWindow {
  label: string;
  fromS: number;
  toS: number;
  /** Requests due in [fromS, toS) that got an answer. */
  requests: number;
  p99Ms: number | null;
}

export interface InstanceRecovery {
  name: string;
  /** From the restart (the spawn) to the process listening. */
  listeningAfterRestartMs: number | null;
  /** From the process listening to the first /readyz answer that shows it in rotation. */
  backInRotationAfterListeningMs: number | null;
}

/** One fault's window: from the kill until every restarted instance is back in rotation (or the end of the load). */
export interface FaultWindow extends LatencyWindow {
  dependency: PlannedFault['dependency'];
  targets: readonly string[];
  killedAtS: number;
  restartedAtS: number;
  /** p99 of the window over p99 before the first fault. */
  ratio: number | null;
  degraded: number;
  failed: number;
  /** The part of the window with the instances down (kill to restart) and the part they take to rejoin. */
  down: LatencyWindow;
  rejoining: LatencyWindow;
  /** From the kill to the first /readyz answer with every target out of rotation (its breaker open). */
  outOfRotationAfterKillMs: number | null;
  instances: InstanceRecovery[];
  /** The longest time between two /readyz answers inside the window: the resolution of the delays. */
  pollGapMaxMs: number | null;
}

/** all-quotes: the answers due from the breaker opening to the restart, each of which must be degraded ["quotes"]. */
export interface AfterBreakerOpened {
  fromS: number;
  toS: number;
  requests: number;
  degradedQuotes: number;
  /** Failed, whole, or degraded otherwise. */
  other: number;
}

export interface ServicesCheck {
  requirement: string;
  held: boolean;
  detail: string;
}

export interface ServicesAnalysis {
  baseline: LatencyWindow;
  windows: FaultWindow[];
  degraded: {
    /** Degraded answers due inside a fault window. */
    inside: number;
    outside: number;
    /** By what they lacked: `quotes`, `images`, `images+quotes`. */
    byParts: Record<string, number>;
  };
  afterBreakerOpened: AfterBreakerOpened | null;
  checks: ServicesCheck[];
}

export interface ServicesRunInput {
  fault: ServicesFault;
  rampS: number;
  durationS: number;
  records: readonly RequestRecord[];
  events: readonly FaultEvents[];
  samples: readonly RotationSample[];
  /** Requests that failed, those never started included (the tally's count). */
  failed: number;
}

const MAX_P99_RATIO = 2;
const BREAKER_OPEN_MS = 1000;
const BACK_IN_ROTATION_MS = 5000;

const round1 = (v: number) => Math.round(v * 10) / 10;
/** Times stay to the millisecond: windows are compared with them. */
const roundS = (v: number) => Math.round(v * 1000) / 1000;
const msBetween = (fromS: number, toS: number | null) => (toS === null ? null : Math.round((toS - fromS) * 1000));
const inside = (r: RequestRecord, fromS: number, toS: number) => r.atS >= fromS && r.atS < toS;

function latencyWindow(records: readonly RequestRecord[], label: string, fromS: number, toS: number): LatencyWindow {
  const latencies = records
    .filter((r) => inside(r, fromS, toS) && r.latencyMs !== null)
    .map((r) => r.latencyMs!)
    .sort((a, b) => a - b);
  const p99 = percentile(latencies, 99);
  return {
    label,
    fromS: roundS(fromS),
    toS: roundS(toS),
    requests: latencies.length,
    p99Ms: p99 === null ? null : round1(p99),
  };
}

function faultWindow(input: ServicesRunInput, events: FaultEvents, baseline: LatencyWindow): FaultWindow {
  const { fault, killedAtS, restartedAtS } = events;
  const instances = fault.targets.map((name) => {
    const listening = events.listeningAtS[name] ?? null;
    const back = listening === null ? null : firstSampleAt(input.samples, listening, [name], true);
    return { name, listening, back };
  });
  const allBack = instances.every((i) => i.back !== null);
  const toS = allBack ? Math.min(input.durationS, Math.max(...instances.map((i) => i.back!))) : input.durationS;
  const window = latencyWindow(input.records, `${fault.label} down`, killedAtS, toS);
  const within = input.records.filter((r) => inside(r, killedAtS, toS));
  return {
    ...window,
    dependency: fault.dependency,
    targets: fault.targets,
    killedAtS: roundS(killedAtS),
    restartedAtS: roundS(restartedAtS),
    ratio:
      window.p99Ms === null || baseline.p99Ms === null || baseline.p99Ms === 0
        ? null
        : Math.round((window.p99Ms / baseline.p99Ms) * 100) / 100,
    degraded: within.filter((r) => r.degraded.length > 0).length,
    failed: within.filter((r) => !r.ok).length,
    down: latencyWindow(input.records, `${fault.label} killed`, killedAtS, Math.min(restartedAtS, toS)),
    rejoining: latencyWindow(input.records, `${fault.label} rejoining`, restartedAtS, toS),
    outOfRotationAfterKillMs: msBetween(killedAtS, firstSampleAt(input.samples, killedAtS, fault.targets, false)),
    instances: instances.map((i) => ({
      name: i.name,
      listeningAfterRestartMs: msBetween(restartedAtS, i.listening),
      backInRotationAfterListeningMs: i.listening === null ? null : msBetween(i.listening, i.back),
    })),
    pollGapMaxMs: longestGapMs(input.samples, killedAtS, toS),
  };
}

function afterBreakerOpened(input: ServicesRunInput, window: FaultWindow): AfterBreakerOpened | null {
  if (window.outOfRotationAfterKillMs === null) return null;
  const fromS = window.killedAtS + window.outOfRotationAfterKillMs / 1000;
  const toS = window.restartedAtS;
  const due = input.records.filter((r) => inside(r, fromS, toS));
  const degradedQuotes = due.filter((r) => r.ok && r.degraded.length === 1 && r.degraded[0] === 'quotes').length;
  return {
    fromS: roundS(fromS),
    toS: roundS(toS),
    requests: due.length,
    degradedQuotes,
    other: due.length - degradedQuotes,
  };
}

function checksOf(input: ServicesRunInput, analysis: Omit<ServicesAnalysis, 'checks'>): ServicesCheck[] {
  const checks: ServicesCheck[] = [
    { requirement: 'no request failed', held: input.failed === 0, detail: `${input.failed} failed` },
  ];
  const { baseline, windows } = analysis;
  if (input.fault === 'one-of-two') {
    const degraded = analysis.degraded.inside + analysis.degraded.outside;
    checks.push({ requirement: 'no degraded answer', held: degraded === 0, detail: `${degraded} degraded` });
    for (const w of windows)
      checks.push({
        requirement: `p99 while ${w.label} within ${MAX_P99_RATIO}x of before`,
        held: w.ratio !== null && w.ratio <= MAX_P99_RATIO,
        detail: `${w.p99Ms ?? '-'} ms vs ${baseline.p99Ms ?? '-'} ms: ${w.ratio ?? '-'}x`,
      });
    return checks;
  }
  const after = analysis.afterBreakerOpened;
  checks.push({
    requirement: 'every answer after the breaker opened degraded ["quotes"]',
    held: after !== null && after.requests > 0 && after.other === 0,
    detail:
      after === null
        ? 'the breaker never opened'
        : `${after.degradedQuotes} of ${after.requests} due ${after.fromS.toFixed(1)}-${after.toS.toFixed(1)} s; ${after.other} otherwise`,
  });
  for (const w of windows) {
    const open = w.outOfRotationAfterKillMs;
    checks.push({
      requirement: `every ${w.dependency} instance out of rotation within ${BREAKER_OPEN_MS} ms of the kill`,
      held: open !== null && open <= BREAKER_OPEN_MS,
      detail: open === null ? 'never seen out of rotation' : `${open} ms`,
    });
    for (const i of w.instances) {
      const back = i.backInRotationAfterListeningMs;
      checks.push({
        requirement: `${i.name} back in rotation within ${BACK_IN_ROTATION_MS} ms of listening`,
        held: back !== null && back <= BACK_IN_ROTATION_MS,
        detail: back === null ? 'never seen back in rotation' : `${back} ms`,
      });
    }
  }
  return checks;
}

/**
 * Judges a `chaos services` run from its requests, its faults and the gateway's /readyz answers: p99 before the
 * first fault (after the ramp) and inside each fault window with their ratio, degraded answers inside and outside
 * the windows, how long the breakers took to open and to close, and the requirements of the plan, each held or not.
 * @example const analysis = analyzeServicesRun({ fault: 'one-of-two', rampS: 5, durationS: 75, records, events, samples, failed: 0 });
 */
export function analyzeServicesRun(input: ServicesRunInput): ServicesAnalysis {
  const firstKill = Math.min(...input.events.map((e) => e.killedAtS));
  const baseline = latencyWindow(
    input.records,
    'before the first fault',
    input.rampS < firstKill ? input.rampS : 0,
    firstKill,
  );
  const windows = input.events.map((e) => faultWindow(input, e, baseline));
  const byParts: Record<string, number> = {};
  let insideCount = 0;
  for (const r of input.records) {
    if (r.degraded.length === 0) continue;
    const key = [...r.degraded].sort().join('+');
    byParts[key] = (byParts[key] ?? 0) + 1;
    if (windows.some((w) => inside(r, w.killedAtS, w.toS))) insideCount++;
  }
  const degradedTotal = Object.values(byParts).reduce((a, b) => a + b, 0);
  const partial = {
    baseline,
    windows,
    degraded: { inside: insideCount, outside: degradedTotal - insideCount, byParts },
    afterBreakerOpened: input.fault === 'all-quotes' && windows[0] ? afterBreakerOpened(input, windows[0]) : null,
  };
  return { ...partial, checks: checksOf(input, partial) };
}
