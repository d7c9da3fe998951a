import { TaskCancelledError } from 'cockatiel';
import type { Config } from '../../config/config.ts';
import type { ContextModule } from '../../platform/context/context-module.ts';
import { payloadIf } from '../../platform/context/events.ts';
import { isConnectionError } from '../../platform/db/pg-errors.ts';
import { createDependencyPolicy } from '../../platform/resilience/dependency-policy.ts';
import type { CachedView, ImageLookup, QuoteLookup } from './account.ts';
import { accountExists } from './accounts-repository.ts';
import { ACCOUNTS_ERRORS } from './errors.ts';
import { ACCOUNTS_EVENTS, AccountUpdated } from './events.ts';
import { accountsMigrations } from './migrations/index.ts';
import { accountsRoutes, accountViewKey } from './routes.ts';

/** Does this account exist? Provided to the other contexts as the port `accounts.exists`. */
export type AccountExists = (accountId: string) => Promise<boolean>;

/** The cached account views, as other contexts whose writes change a view reach them: the port `accounts.views`. */
export interface AccountViews {
  /** Drops the account's view here and in the shared tier (after a write that changed it committed). */
  invalidate(accountId: string): Promise<void>;
  /** Drops the account's view in this instance only (an event of another instance's write); undefined: every view. */
  forget(accountId: string | undefined): void;
}

/**
 * Accounts and their events, on a role of their own. A view of an account carries its image, read through the
 * images context's port `images.lookup` under a timeout, a retry and a circuit breaker: a failing images context
 * degrades the answer (`imageData: null`) instead of failing it. It also carries a quote from the port
 * `quotes.random` (the fallback quote when none comes within QUOTES_TIMEOUT_MS). In the split deployment this
 * module is the accounts-data service, and gateway.ts composes the view over HTTP.
 */
export const accountsModule: ContextModule<Config> = {
  name: 'accounts',
  migrations: accountsMigrations,
  role: { name: 'stratum_accounts', uses: ['outbox', 'idempotency'], reads: true },
  errors: ACCOUNTS_ERRORS,
  events: ACCOUNTS_EVENTS,
  start(platform) {
    const { config } = platform;
    const transaction = platform.transactionOn(platform.sql);
    const cache = platform.cache<CachedView>('accounts');
    const imagesPolicy = createDependencyPolicy({
      attemptTimeoutMs: config.imagesTimeoutMs,
      retries: 1,
      breakerThreshold: 5,
      halfOpenAfterMs: 5000,
      isTransient: (error) => error instanceof TaskCancelledError || isConnectionError(error),
    });
    const lookupImage: ImageLookup = (accountId, signal) =>
      imagesPolicy.execute(
        (attemptSignal) => platform.port<ImageLookup>('images.lookup')(accountId, attemptSignal),
        signal,
      );
    const exists: AccountExists = (id) =>
      // Through transaction(): the check runs again when a failover cuts it.
      transaction({ label: 'accounts.exists', readOnly: true, autocommit: true }, (tx) => accountExists(tx, id));
    const views: AccountViews = {
      invalidate: (id) => cache.invalidate(accountViewKey(id)),
      forget: (id) => cache.forget(id === undefined ? undefined : accountViewKey(id)),
    };
    return {
      browse: () => ({ schemas: ['accounts'], databases: [{ name: 'main', sql: platform.sql }] }),
      routes: accountsRoutes({
        sql: platform.sql,
        transaction,
        idempotencyTtlMs: config.idempotencyTtlMs,
        lookupImage,
        lookupQuote: (signal) => platform.port<QuoteLookup>('quotes.random')(signal),
        quotesTimeoutMs: config.quotesTimeoutMs,
        instance: platform.instance,
        // On the accounts-data service the gateway composes the view.
        servesViews: config.role !== 'accounts-data',
        cache,
        ...(platform.readSql ? { readTransaction: platform.transactionOn(platform.readSql) } : {}),
        onViewLoad: () => platform.metrics.countCacheLoad('accounts'),
      }),
      ports: { 'accounts.exists': exists, 'accounts.views': views },
      cacheRules: [
        {
          cache,
          keysOf: (event) => {
            const updated = payloadIf(event, AccountUpdated);
            return updated ? [accountViewKey(updated.id)] : [];
          },
        },
      ],
      close: () => cache.close(),
    };
  },
};
