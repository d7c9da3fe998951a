import type { Migration } from '../platform/migrate/migration.ts';
import { usersMigrations } from './users/migrations/index.ts';

/** Every context's migrations, in the order the contexts apply. */
export function allMigrations(): Migration[] {
  return [...usersMigrations()];
}
