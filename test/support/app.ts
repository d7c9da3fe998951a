import { loadConfig, type Config } from '../../src/config/config.ts';
import { assembleServices, type Services } from '../../src/main.ts';
import type { TestDatabase } from './db.ts';

/** The real app over a test database, with config overrides (e.g. a short deadline). */
export async function startTestApp(db: TestDatabase, overrides: Partial<Config> = {}): Promise<Services & { config: Config }> {
  const config = { ...loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' }, process.cwd()), ...overrides };
  const services = await assembleServices(config, db.sql, db.applicationName);
  return { ...services, config };
}
