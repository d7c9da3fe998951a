import type { Config } from '../../config/config.ts';
import type { ContextModule } from '../../platform/context/context-module.ts';
import { payloadIf } from '../../platform/context/events.ts';
import { USERS_ERRORS } from './errors.ts';
import { USERS_EVENTS, UserCreated } from './events.ts';
import { usersMigrations } from './migrations/index.ts';
import { USER_EVENTS_KEY, usersRoutes } from './routes.ts';
import { applyScoreFanOut } from './users-repository.ts';

/** The consumer group that applies deferred score fan-outs (SCORE_MODE=async). */
export const SCORE_FANOUT_GROUP = 'users.score-fanout';

/**
 * Users and their scores, on the administrative pool (no role of its own). With SCORE_MODE=async a creation
 * publishes user.created and this context's consumer applies the fan-out, in creation order.
 */
export const usersModule: ContextModule<Config> = {
  name: 'users',
  migrations: usersMigrations,
  errors: USERS_ERRORS,
  events: USERS_EVENTS,
  start(platform) {
    const { config } = platform;
    const transaction = platform.transactionOn(platform.sql);
    return {
      browse: () => ({ schemas: ['users'], databases: [{ name: 'main', sql: platform.sql }] }),
      routes: usersRoutes({
        sql: platform.sql,
        transaction,
        scoreMode: config.scoreMode,
        idempotencyTtlMs: config.idempotencyTtlMs,
        ...(platform.readSql ? { readTransaction: platform.transactionOn(platform.readSql) } : {}),
      }),
      consumers:
        config.scoreMode === 'async'
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
    };
  },
};
