import type { HttpTarget, RequestPlan } from './http-target.ts';
import type { Random } from './random.ts';
import type { ReadBackResult } from './read-back.ts';

/** A load scenario: what each arrival asks, and how to check afterwards what the run created. */
export interface Scenario {
  name: string;
  kinds: readonly string[];
  nextRequest(random: Random): RequestPlan;
  /** Reads back what the run created, for scenarios that create; called once the load is over. */
  readBack?: (target: HttpTarget) => Promise<ReadBackResult>;
  /** Ids of the accounts the run created (each answered 201), for a check straight against the database. */
  createdAccountIds?: () => readonly string[];
  /** Sets up what the load addresses (rows to contend on); called once before the load. */
  prepare?: (target: HttpTarget, log: (line: string) => void) => Promise<void>;
  /**
   * Judges the run once the load is over, in place of the read-back and the plain report: the verdict's
   * lines are printed and `ok` decides the exit code.
   */
  check?: (target: HttpTarget, log: (line: string) => void) => Promise<ScenarioVerdict>;
}

export interface ScenarioVerdict {
  ok: boolean;
  lines: string[];
  /** What goes into the --json report under `checks`. */
  json: unknown;
}

export interface ScenarioSettings {
  /** Seeded accounts to address: `seededAccountId(0 .. accounts-1)`. */
  accounts: number;
  /** Customers orders are created for and listed by: 1 .. customers. */
  customers: number;
  /** Makes the names this run creates unique across runs. */
  runTag: string;
  /** orders-contention: the catalog database, to read the bucket map and, afterwards, every shard. */
  databaseUrl?: string;
  /** orders-contention: the server's TX_DEADLINE_MS; no answer may come later than it plus 250 ms. */
  deadlineMs?: number;
  /** orders-contention: longest wait after the load for prepared transactions and sagas to finish. */
  settleS?: number;
}

/** A request mix: each kind with its weight. */
export type Mix = readonly (readonly [kind: string, weight: number])[];

/** The kind a roll in [0, 1) falls on, in proportion to the weights. */
export function pickWeighted(mix: Mix, roll: number): string {
  const total = mix.reduce((sum, [, weight]) => sum + weight, 0);
  let left = roll * total;
  for (const [kind, weight] of mix) {
    left -= weight;
    if (left < 0) return kind;
  }
  return mix[0]![0];
}
