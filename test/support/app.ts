import { loadConfig, type Config } from '../../src/config/config.ts';
import { openContextPools } from '../../src/app/context-pools.ts';
import { passwordOfUrl } from '../../src/platform/db/connect.ts';
import { assembleServices, type Services } from '../../src/app/services.ts';
import type { TestDatabase } from './db.ts';

export interface TestApp extends Services {
  config: Config;
  /** Closes the app, its caches and the context pools it opened. */
  close(): Promise<void>;
}

/** The real app over a test database (with the contexts' own roles), with config overrides. */
export async function startTestApp(db: TestDatabase, overrides: Partial<Config> = {}): Promise<TestApp> {
  const config = { ...loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' }, process.cwd()), ...overrides };
  const adminSecret = passwordOfUrl(db.url);
  const pools = await openContextPools({
    admin: db.sql,
    target: { url: db.url },
    adminSecret,
    passwords: config.rolePasswords,
    poolMax: 5,
    applicationName: db.applicationName,
  });
  const services = await assembleServices(config, {
    admin: db.sql,
    target: { url: db.url },
    pools,
    applicationName: db.applicationName,
  }).catch(async (error) => {
    await pools.end();
    throw error;
  });
  return {
    ...services,
    config,
    async close() {
      await services.close();
      await pools.end();
    },
  };
}
