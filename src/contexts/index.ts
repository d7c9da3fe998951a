import type { Migration } from '../platform/migrate/migration.ts';
import { accountsMigrations } from './accounts/migrations/index.ts';
import { imagesMigrations } from './images/migrations/index.ts';
import { ordersMigrations } from './orders/migrations/index.ts';
import { usersMigrations } from './users/migrations/index.ts';
import { messagingMigrations } from '../platform/messaging/migrations/index.ts';

/** Every context's migrations, in the order the contexts apply. */
export function allMigrations(): Migration[] {
  // messaging last: it grants the contexts' roles their right to write events.
  return [...usersMigrations(), ...accountsMigrations(), ...imagesMigrations(), ...ordersMigrations(), ...messagingMigrations()];
}
