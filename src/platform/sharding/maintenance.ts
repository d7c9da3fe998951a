import type { SagaDefinition, SagaRunner } from '../saga/saga.ts';
import type { ShardSet } from './shard-set.ts';
import { recoverInDoubt } from './two-phase.ts';

export interface ShardMaintenanceOptions {
  shards: ShardSet;
  sagas: SagaRunner;
  sagaDefinitions: ReadonlyArray<SagaDefinition<never>>;
  /** How often in-doubt transactions and abandoned sagas are looked for. */
  intervalMs?: number;
  /** An in-doubt branch with no decision is aborted only once it is this old (its coordinator may be deciding). */
  graceMs?: number;
  log?: (message: string, error?: unknown) => void;
}

/**
 * Finishes what dead processes left: in-doubt two-phase commits (by their recorded decision) and sagas whose
 * lease ran out. Runs once before returning (so a restarted server serves a settled state), then periodically.
 */
export async function startShardMaintenance(
  options: ShardMaintenanceOptions,
): Promise<{ runOnce(): Promise<void>; stop(): Promise<void> }> {
  const log = options.log ?? (() => {});
  const graceMs = options.graceMs ?? 30_000;
  let running: Promise<void> | undefined;
  const runOnce = () => {
    running ??= (async () => {
      try {
        const report = await recoverInDoubt(options.shards.catalogBackground, options.shards.all(), { graceMs, log });
        if (report.committed.length + report.rolledBack.length > 0) {
          log(
            `two-phase recovery: committed ${report.committed.length}, rolled back ${report.rolledBack.length} in-doubt branch(es)`,
          );
        }
        const resumed = await options.sagas.resume(options.sagaDefinitions);
        if (resumed.length > 0) log(`resumed ${resumed.length} unfinished saga(s)`);
      } catch (error) {
        log('shard maintenance failed; will try again', error);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  await runOnce();
  const timer = setInterval(() => {
    void runOnce();
  }, options.intervalMs ?? 10_000);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
