import { randomUUID } from 'node:crypto';
import type { Sql } from '../db/connect.ts';
import type { FaultPoint } from '../faults.ts';
import { currentDeadline, outsideDeadline, withOwnDeadline } from '../db/deadline-scope.ts';

/** One step of a saga: `run` and `compensate` must both be idempotent (a resumed saga may repeat either). */
export interface SagaStep<S> {
  name: string;
  /** Does the step's work; what it returns is merged into the saga's state and stored. */
  run(state: S, signal: AbortSignal): Promise<Partial<S> | void>;
  /** Undoes the step; must also be safe when `run` never happened or failed half way. */
  compensate?(state: S): Promise<void>;
  /** Longest a run may take before it counts as failed (default 5 s); never past the saga's deadline less its settling time. */
  timeoutMs?: number;
}

export interface SagaDefinition<S> {
  kind: string;
  steps: ReadonlyArray<SagaStep<S>>;
}

export type SagaOutcome<S> =
  | { id: string; status: 'completed'; state: S }
  | { id: string; status: 'compensated'; state: S; failedStep: string; error: unknown; compensated: string[] };

interface SagaRow {
  id: string;
  kind: string;
  status: 'running' | 'compensating' | 'completed' | 'compensated';
  step: number;
  state: unknown;
  failed_step: string | null;
  error: string | null;
}

export interface SagaRunnerOptions {
  /** Holds sharding.sagas (the catalog). */
  sql: Sql;
  /** How long a claimed saga stays this process's; another process resumes it after. */
  leaseMs?: number;
  fault?: FaultPoint;
  log?: (message: string, error?: unknown) => void;
  /**
   * Time kept before a saga's deadline for compensating: a step's timeout ends this long before the deadline,
   * so a failed step is undone while its caller still waits (default 500 ms).
   */
  settleMs?: number;
}

/** Thrown by a step for a failure that should compensate with this error as the answer (e.g. declined). */
export class StepTimedOut extends Error {
  override name = 'StepTimedOut';
}

/**
 * Runs sagas whose progress is stored in sharding.sagas before and after every step: a process killed mid-saga
 * leaves a row that resume() (at start and periodically, once its lease expires) picks up, re-running the step
 * it was in, or going on compensating. A failed step compensates the steps done (and itself) in reverse.
 * @example const outcome = await runner.start(checkout, { customerId, items, paymentToken });
 */
export function createSagaRunner(options: SagaRunnerOptions) {
  const { sql } = options;
  const leaseMs = options.leaseMs ?? 30_000;
  const owner = `${process.pid}-${randomUUID().slice(0, 8)}`;
  const fault = options.fault ?? (() => {});
  const log = options.log ?? (() => {});
  const settleMs = options.settleMs ?? 500;

  async function save(
    id: string,
    fields: { status?: SagaRow['status']; step?: number; state?: unknown; failedStep?: string; error?: string },
  ) {
    await sql`update sharding.sagas set
        status = coalesce(${fields.status ?? null}, status), step = coalesce(${fields.step ?? null}::int, step),
        state = coalesce(${fields.state === undefined ? null : sql.json(fields.state as never)}::jsonb, state),
        failed_step = coalesce(${fields.failedStep ?? null}, failed_step), error = coalesce(${fields.error ?? null}, error),
        lease_until = now() + make_interval(secs => ${leaseMs / 1000}), updated_at = now()
      where id = ${id} and lease_owner = ${owner}`;
  }

  async function runStep<S>(step: SagaStep<S>, state: S, deadlineAt: number | undefined): Promise<Partial<S> | void> {
    const controller = new AbortController();
    const left = deadlineAt === undefined ? Number.POSITIVE_INFINITY : deadlineAt - settleMs - Date.now();
    if (left <= 0) throw new StepTimedOut(`no time was left before the saga's deadline for step ${step.name}`);
    const timeoutMs = Math.min(step.timeoutMs ?? 5000, left);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new StepTimedOut(`step ${step.name} gave no answer within ${timeoutMs} ms`);
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    try {
      // Everything the step waits for (a connection, a lock) is bounded by its timeout.
      return await Promise.race([
        withOwnDeadline(Date.now() + timeoutMs, () => step.run(state, controller.signal)),
        late,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function compensateFrom<S>(def: SagaDefinition<S>, id: string, state: S, from: number): Promise<string[]> {
    const done: string[] = [];
    for (let i = from; i >= 0; i--) {
      const step = def.steps[i]!;
      if (step.compensate) {
        await step.compensate(state);
        done.push(step.name);
      }
      await save(id, { step: i - 1 });
      fault(`saga:compensated:${step.name}`);
    }
    await save(id, { status: 'compensated' });
    return done;
  }

  async function drive<S>(def: SagaDefinition<S>, row: SagaRow, deadlineAt?: number): Promise<SagaOutcome<S>> {
    let state = row.state as S;
    if (row.status === 'compensating') {
      const compensated = await compensateFrom(def, row.id, state, row.step);
      return {
        id: row.id,
        status: 'compensated',
        state,
        failedStep: row.failed_step ?? '',
        error: row.error,
        compensated,
      };
    }
    for (let i = row.step; i < def.steps.length; i++) {
      const step = def.steps[i]!;
      try {
        const produced = await runStep(step, state, deadlineAt);
        if (produced) state = { ...state, ...produced };
        fault(`saga:ran:${step.name}`);
        await save(row.id, { step: i + 1, state });
      } catch (error) {
        const message = (error as Error)?.message ?? String(error);
        await save(row.id, { status: 'compensating', step: i, failedStep: step.name, error: message });
        const compensated = await compensateFrom(def, row.id, state, i);
        return { id: row.id, status: 'compensated', state, failedStep: step.name, error, compensated };
      }
    }
    await save(row.id, { status: 'completed' });
    return { id: row.id, status: 'completed', state };
  }

  return {
    /**
     * Starts a saga and runs it to its end (completed, or compensated after a failed step). Its steps run by
     * `deadlineAt` (default: the current scope's deadline, if any) less the settling time; a step with no time
     * left fails and the saga compensates. Once started, it runs outside the caller's deadline scope: a caller
     * that stops waiting (answers "pending") leaves it to finish; a process that dies leaves it to resume().
     */
    async start<S extends object>(
      def: SagaDefinition<S>,
      initial: S,
      id: string = randomUUID(),
      startOptions: { deadlineAt?: number } = {},
    ): Promise<SagaOutcome<S & { sagaId: string }>> {
      const deadlineAt = startOptions.deadlineAt ?? currentDeadline();
      const state = { ...initial, sagaId: id };
      await sql`insert into sharding.sagas (id, kind, status, step, state, lease_owner, lease_until)
        values (${id}, ${def.kind}, 'running', 0, ${sql.json(state as never)}, ${owner}, now() + make_interval(secs => ${leaseMs / 1000}))`;
      return outsideDeadline(() =>
        drive(
          def as SagaDefinition<S & { sagaId: string }>,
          { id, kind: def.kind, status: 'running', step: 0, state, failed_step: null, error: null },
          deadlineAt,
        ),
      );
    },

    /**
     * Claims unfinished sagas whose lease ran out (their process died) and drives each to its end.
     * Returns their outcomes.
     */
    async resume(defs: ReadonlyArray<SagaDefinition<never>>): Promise<Array<SagaOutcome<unknown>>> {
      const byKind = new Map(defs.map((d) => [d.kind, d]));
      const claimed = await sql<SagaRow[]>`
        update sharding.sagas s set lease_owner = ${owner}, lease_until = now() + make_interval(secs => ${leaseMs / 1000})
        where s.id in (select id from sharding.sagas where status in ('running', 'compensating') and lease_until < now()
                       and kind = any(${[...byKind.keys()]}::text[]) order by created_at limit 100 for update skip locked)
        returning s.id, s.kind, s.status, s.step, s.state, s.failed_step, s.error`;
      const outcomes: Array<SagaOutcome<unknown>> = [];
      for (const row of claimed) {
        try {
          outcomes.push(await drive(byKind.get(row.kind)! as SagaDefinition<unknown>, row));
        } catch (error) {
          log(`saga ${row.id} could not be resumed now; it will be tried again`, error);
        }
      }
      return outcomes;
    },

    /** A saga's stored progress. */
    async status(id: string): Promise<SagaRow | undefined> {
      const [row] = await sql<
        SagaRow[]
      >`select id, kind, status, step, state, failed_step, error from sharding.sagas where id = ${id}`;
      return row;
    },
  };
}

export type SagaRunner = ReturnType<typeof createSagaRunner>;
