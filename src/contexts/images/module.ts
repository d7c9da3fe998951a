import type { Config } from '../../config/config.ts';
import type { ContextModule } from '../../platform/context/context-module.ts';
import { payloadIf } from '../../platform/context/events.ts';
import { IMAGES_ERRORS } from './errors.ts';
import { IMAGES_EVENTS, ImageChanged } from './events.ts';
import { findAccountImage } from './images-repository.ts';
import { imagesMigrations } from './migrations/index.ts';
import { imagesRoutes } from './routes.ts';

/** What this context needs of the accounts context's ports (`accounts.exists`, `accounts.views`). */
type AccountExists = (accountId: string) => Promise<boolean>;
interface AccountViews {
  invalidate(accountId: string): Promise<void>;
  forget(accountId: string | undefined): void;
}

/** An account's image: found through the port `images.lookup`. */
export type FindImage = (accountId: string, signal: AbortSignal) => Promise<{ url: string } | null>;

/**
 * Accounts' images, on a role and a pool of their own. An image is set only on an account the accounts context
 * knows; the account's cached view is dropped after the image's transaction committed, and on other instances
 * when its event reaches them.
 */
export const imagesModule: ContextModule<Config> = {
  name: 'images',
  migrations: imagesMigrations,
  role: { name: 'stratum_images', uses: ['outbox', 'idempotency'] },
  errors: IMAGES_ERRORS,
  events: IMAGES_EVENTS,
  start(platform) {
    const views = () => platform.port<AccountViews>('accounts.views');
    const find: FindImage = (accountId, signal) => findAccountImage(platform.sql, accountId, signal);
    return {
      browse: () => ({ schemas: ['images'], databases: [{ name: 'main', sql: platform.sql }] }),
      routes: imagesRoutes({
        transaction: platform.transactionOn(platform.sql),
        accountExists: (id) => platform.port<AccountExists>('accounts.exists')(id),
        afterImageChanged: (id) => views().invalidate(id),
        find,
        instance: platform.instance,
      }),
      ports: { 'images.lookup': find },
      cacheRules: [
        {
          cache: { forget: (accountId) => views().forget(accountId) },
          keysOf: (event) => {
            const changed = payloadIf(event, ImageChanged);
            return changed ? [changed.accountId] : [];
          },
        },
      ],
    };
  },
};
