import type { Config } from '../../config/config.ts';
import type { ContextModule } from '../../platform/context/context-module.ts';
import { payloadIf } from '../../platform/context/events.ts';
import { createPool } from '../../platform/db/connect.ts';
import { compactScores, scoreLogStatus, type CompactionResult, type ScoreLogStatus } from './deferred-scores.ts';
import { USERS_ERRORS } from './errors.ts';
import { USERS_EVENTS, UserCreated } from './events.ts';
import { usersMigrations } from './migrations/index.ts';
import { USER_EVENTS_KEY, usersRoutes } from './routes.ts';
import { applyScoreFanOut } from './users-repository.ts';

/** The consumer group that applies deferred score fan-outs (SCORE_MODE=async). */
export const SCORE_FANOUT_GROUP = 'users.score-fanout';

/** How long a start in an eager mode waits for another process's compaction to finish before its own. */
const START_COMPACTION_WAIT_MS = 60_000;

/**
 * Users and their scores, on the administrative pool (no role of its own). With SCORE_MODE=async a creation
 * publishes user.created and this context's consumer applies the fan-out, in creation order. With
 * SCORE_MODE=deferred a creation appends to the score log and a background compaction, on connections of its
 * own, folds the log into the stored scores; a start in an eager mode folds in whatever is left first.
 */
export const usersModule: ContextModule<Config> = {
  name: 'users',
  migrations: usersMigrations,
  errors: USERS_ERRORS,
  events: USERS_EVENTS,
  async start(platform) {
    const { config, logger } = platform;
    const transaction = platform.transactionOn(platform.sql);
    const compactionPool = createPool(platform.target, {
      max: 2,
      applicationName: `${platform.applicationName}-compaction`,
      name: 'users-compaction',
      connectTimeoutSeconds: 5,
      statementTimeoutMs: 120_000,
      acquireWaitMs: 10_000,
    });
    let asyncFanoutsPending = false;
    try {
      if (config.scoreMode !== 'deferred') await compactBeforeEagerMode(compactionPool, logger);
      else asyncFanoutsPending = (await scoreLogStatus(compactionPool)).pendingFanouts > 0;
    } catch (error) {
      await compactionPool.end({ timeout: 1 });
      throw error;
    }
    /** The last background compaction, as one line for the dashboard. */
    let lastCompaction: string | undefined;
    const describeRun = (result: CompactionResult) =>
      result.outcome === 'compacted'
        ? `${result.moved} users moved to log index ${result.target}, ${result.trimmed} log rows trimmed`
        : result.outcome === 'busy'
          ? `skipped: ${result.reason}`
          : `nothing pending (log index ${result.target})`;
    const stopping = new AbortController();
    let running: Promise<void> | undefined;
    let timer: NodeJS.Timeout | undefined;
    const compactInBackground = () => {
      running = compactScores(compactionPool, { signal: stopping.signal })
        .then((result) => {
          lastCompaction = `${new Date().toISOString()}: ${describeRun(result)}`;
          if (result.outcome === 'compacted')
            logger.info(
              { ...result },
              `score log compacted: ${result.moved} users moved to log index ${result.target}`,
            );
          else if (result.outcome === 'busy') logger.info(`score log compaction skipped: ${result.reason}`);
        })
        .catch((error: unknown) => {
          if (stopping.signal.aborted) return;
          lastCompaction = `${new Date().toISOString()}: failed: ${String(error)}`;
          logger.warn({ err: error }, 'score log compaction failed; the next run carries on');
        })
        .finally(() => {
          running = undefined;
          if (!stopping.signal.aborted) timer = setTimeout(compactInBackground, config.scoreCompactionIntervalMs);
        });
    };
    if (config.scoreMode === 'deferred' && platform.runsWorkers && config.scoreCompactionIntervalMs > 0)
      timer = setTimeout(compactInBackground, config.scoreCompactionIntervalMs);

    // One read serves both gauges of a scrape and a dashboard sample close to it.
    let lastStatus: { at: number; read: Promise<ScoreLogStatus> } | undefined;
    const status = () => {
      if (!lastStatus || Date.now() - lastStatus.at > 500) {
        const read = scoreLogStatus(compactionPool);
        lastStatus = { at: Date.now(), read };
        read.catch(() => {
          if (lastStatus?.read === read) lastStatus = undefined;
        });
      }
      return lastStatus.read;
    };
    platform.metrics.gauge(
      'stratum_users_score_log_length',
      'Creations in the score log not yet folded into every stored score (SCORE_MODE=deferred)',
      async () => (await status()).lag,
    );
    platform.metrics.gauge(
      'stratum_users_score_compaction_lag_seconds',
      'Age of the oldest creation in the score log not yet folded into every stored score',
      async () => (await status()).lagSeconds,
    );
    return {
      browse: () => ({ schemas: ['users'], databases: [{ name: 'main', sql: platform.sql }] }),
      routes: usersRoutes({
        sql: platform.sql,
        transaction,
        scoreMode: config.scoreMode,
        idempotencyTtlMs: config.idempotencyTtlMs,
        ...(platform.readSql ? { readTransaction: platform.transactionOn(platform.readSql) } : {}),
      }),
      // A deferred start with async fan-outs still pending runs it too: they are applied (they precede every
      // logged creation, and compaction waits for them), then the log is folded in.
      consumers:
        config.scoreMode === 'async' || asyncFanoutsPending
          ? [
              {
                group: SCORE_FANOUT_GROUP,
                events: [UserCreated],
                transaction,
                async handle(event, tx) {
                  const created = event.key === USER_EVENTS_KEY ? payloadIf(event, UserCreated) : undefined;
                  if (created?.others !== undefined) await applyScoreFanOut(tx, created.id, created.others);
                },
              },
            ]
          : [],
      async status() {
        const log = await status();
        return {
          scoreMode: config.scoreMode,
          scoreLogLength: log.lag,
          compactionLagSeconds: Math.round(log.lagSeconds),
          compactedThrough: log.oldest,
          logHead: log.head,
          pendingAsyncFanouts: log.pendingFanouts,
          lastCompaction: lastCompaction ?? null,
        };
      },
      async close() {
        stopping.abort(new Error('stratum is stopping'));
        clearTimeout(timer);
        await running;
        await compactionPool.end({ timeout: 5 });
      },
    };
  },
};

/**
 * An eager mode reads stored scores as they are, so what SCORE_MODE=deferred left in the log is folded in first.
 * Another process's compaction is waited for; async fan-outs still pending before logged creations cannot be
 * ordered by an eager mode, so that start is refused with what to do.
 */
async function compactBeforeEagerMode(sql: ReturnType<typeof createPool>, logger: { info(message: string): void }) {
  const started = Date.now();
  for (;;) {
    const log = await scoreLogStatus(sql);
    if (log.lag === 0) return;
    const result = await compactScores(sql, {});
    if (result.outcome !== 'busy') {
      if (result.outcome === 'compacted')
        logger.info(
          `score log compacted before an eager SCORE_MODE: ${result.moved} users moved (log index ${result.target})`,
        );
      return;
    }
    if (log.pendingFanouts > 0)
      throw new Error(
        `the score log holds ${log.lag} creations and ${log.pendingFanouts} async fan-outs are still pending before them: ` +
          'run with SCORE_MODE=deferred until they are applied and compacted (`stratum users status`), then switch',
      );
    if (Date.now() - started > START_COMPACTION_WAIT_MS)
      throw new Error(`the score log could not be compacted within ${START_COMPACTION_WAIT_MS} ms: ${result.reason}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
