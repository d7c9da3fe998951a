import type { Migration } from '../platform/migrate/migration.ts';
import { accountsMigrations } from './accounts/migrations/index.ts';
import { imagesMigrations } from './images/migrations/index.ts';
import { ordersMigrations } from './orders/migrations/index.ts';
import { usersMigrations } from './users/migrations/index.ts';

/** Every context's migrations, in the order the contexts apply. */
export function allMigrations(): Migration[] {
  return [...usersMigrations(), ...accountsMigrations(), ...imagesMigrations(), ...ordersMigrations()];
}
