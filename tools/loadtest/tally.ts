import { createTimeline, type Timeline } from './timeline.ts';

/** What became of one scheduled request. */
export type Outcome =
  | { ok: true; latencyMs: number; degraded: boolean }
  /** `code` is the problem+json code, else the HTTP status, else the network or client error code. */
  | { ok: false; code: string; status: number | null; latencyMs: number | null };

/** Client-side failure codes, beside the server's problem codes. */
export const CLIENT_OVERLOADED = 'CLIENT.OVERLOADED';
export const CLIENT_TIMEOUT = 'CLIENT.TIMEOUT';

export interface KindTally {
  scheduled: number;
  /** Requests actually started; scheduled minus those refused because too many were in flight. */
  sent: number;
  /** Requests answered with any HTTP status. */
  completed: number;
  ok: number;
  failed: number;
  /** 2xx reads that came back with `degraded` set (e.g. images unavailable). */
  degraded: number;
  /** Milliseconds from the scheduled start to the end of the body, for every HTTP answer. */
  latencies: number[];
}

export interface FailureGroup {
  code: string;
  status: number | null;
  count: number;
  byKind: Record<string, number>;
}

export interface Tally {
  kinds: Record<string, KindTally>;
  failures: Map<string, FailureGroup>;
  /** The same requests per second: the live progress line and the HTML report's charts. */
  timeline: Timeline;
}

export function createTally(kinds: readonly string[], timeline: Timeline = createTimeline(kinds)): Tally {
  const tally: Tally = { kinds: {}, failures: new Map(), timeline };
  for (const kind of kinds) tally.kinds[kind] = emptyKind();
  return tally;
}

function emptyKind(): KindTally {
  return { scheduled: 0, sent: 0, completed: 0, ok: 0, failed: 0, degraded: 0, latencies: [] };
}

function kindOf(tally: Tally, kind: string): KindTally {
  const found = tally.kinds[kind];
  if (found) return found;
  const created = emptyKind();
  tally.kinds[kind] = created;
  return created;
}

function recordFailure(tally: Tally, kind: string, code: string, status: number | null): void {
  const key = `${code}\u0000${status ?? ''}`;
  const group = tally.failures.get(key) ?? { code, status, count: 0, byKind: {} };
  group.count += 1;
  group.byKind[kind] = (group.byKind[kind] ?? 0) + 1;
  tally.failures.set(key, group);
  kindOf(tally, kind).failed += 1;
}

/** A request that was due but could not be started; it counts as a failure, never as nothing. */
export function recordNotStarted(tally: Tally, kind: string, code: string): void {
  kindOf(tally, kind).scheduled += 1;
  recordFailure(tally, kind, code, null);
  tally.timeline.notStarted(kind, code);
}

export function recordStarted(tally: Tally, kind: string): void {
  const k = kindOf(tally, kind);
  k.scheduled += 1;
  k.sent += 1;
  tally.timeline.started(kind);
}

/** `expectedStatus` is the status an `ok` outcome came with, for the timeline's status counts. */
export function recordOutcome(tally: Tally, kind: string, outcome: Outcome, expectedStatus?: number): void {
  const k = kindOf(tally, kind);
  const key = outcome.ok
    ? String(expectedStatus ?? 'ok')
    : outcome.status === null
      ? outcome.code
      : String(outcome.status);
  tally.timeline.settled(kind, key, outcome.ok, outcome.latencyMs);
  if (outcome.latencyMs !== null) {
    k.completed += 1;
    k.latencies.push(outcome.latencyMs);
  }
  if (outcome.ok) {
    k.ok += 1;
    if (outcome.degraded) k.degraded += 1;
  } else {
    recordFailure(tally, kind, outcome.code, outcome.status);
  }
}
