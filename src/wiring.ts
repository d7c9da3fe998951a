import { TaskCancelledError } from 'cockatiel';
import { createClient } from 'redis';
import type { Config } from './config/config.ts';
import type { ContextPools } from './context-pools.ts';
import type { AccountView, ImageLookup } from './contexts/accounts/account.ts';
import { accountExists } from './contexts/accounts/accounts-repository.ts';
import { accountsRoutes, accountViewKey } from './contexts/accounts/routes.ts';
import { findAccountImage } from './contexts/images/images-repository.ts';
import { imagesRoutes } from './contexts/images/routes.ts';
import { usersRoutes } from './contexts/users/routes.ts';
import type { App } from './http/app.ts';
import { createReadCache, createRedisTier } from './platform/cache/index.ts';
import type { Sql } from './platform/db/connect.ts';
import { isConnectionError } from './platform/db/pg-errors.ts';
import { createTransaction, type TransactionFn } from './platform/db/transaction.ts';
import type { Metrics } from './platform/observability/metrics.ts';
import { createDependencyPolicy } from './platform/resilience/dependency-policy.ts';

export interface WiredContexts {
  routes: Array<(app: App) => void>;
  /** The users context's transaction function (the administrative pool). */
  transaction: TransactionFn;
  close(): Promise<void>;
}

/**
 * Connects the bounded contexts to the platform and to each other's small ports: each context gets
 * transactions on its own pool; accounts reads images through a resilience policy; writes of either context
 * drop the account's cached view after they commit.
 */
export async function wireContexts(
  config: Config,
  deps: { admin: Sql; pools: ContextPools; applicationName: string; metrics: Metrics },
): Promise<WiredContexts> {
  const transactionOn = (sql: Sql) => createTransaction({
    sql, defaultDeadlineMs: config.txDeadlineMs, now: Date.now, random: Math.random, observer: deps.metrics.transactionObserver,
  });
  const usersTransaction = transactionOn(deps.admin);

  const redis = config.redisUrl ? createClient({ url: config.redisUrl }) : undefined;
  if (redis) {
    redis.on('error', () => {}); // reconnects by itself; the cache degrades to its local tier meanwhile
    await redis.connect();
  }
  const cache = createReadCache<AccountView>({
    namespace: 'stratum:accounts',
    ttlMs: config.cacheTtlMs,
    maxEntries: config.cacheMaxEntries,
    shared: redis ? createRedisTier({ client: redis, namespace: 'stratum:accounts', ttlMs: config.cacheTtlMs }) : undefined,
  });

  const imagesPolicy = createDependencyPolicy({
    attemptTimeoutMs: config.imagesTimeoutMs,
    retries: 1,
    breakerThreshold: 5,
    halfOpenAfterMs: 5000,
    isTransient: (error) => error instanceof TaskCancelledError || isConnectionError(error),
  });
  const lookupImage: ImageLookup = (accountId, signal) =>
    imagesPolicy.execute((attemptSignal) => findAccountImage(deps.pools.images, accountId, AbortSignal.any([signal, attemptSignal])));

  return {
    transaction: usersTransaction,
    routes: [
      usersRoutes({ sql: deps.admin, transaction: usersTransaction }),
      accountsRoutes({ sql: deps.pools.accounts, transaction: transactionOn(deps.pools.accounts), lookupImage, cache }),
      imagesRoutes({
        transaction: transactionOn(deps.pools.images),
        accountExists: (id) => accountExists(deps.pools.accounts, id),
        afterImageChanged: (id) => cache.invalidate(accountViewKey(id)),
      }),
    ],
    async close() {
      await cache.close();
      if (redis?.isOpen) await redis.quit();
    },
  };
}
