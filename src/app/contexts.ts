import type { Config } from '../config/config.ts';
import { accountsModule } from '../contexts/accounts/module.ts';
import { imagesModule } from '../contexts/images/module.ts';
import { ordersModule } from '../contexts/orders/module.ts';
import { quotesModule } from '../contexts/quotes/module.ts';
import { usersModule } from '../contexts/users/module.ts';
import type { ContextModule } from '../platform/context/context-module.ts';

/** The bounded contexts this process runs, in start order: one line per context. */
export const CONTEXTS: readonly ContextModule<Config>[] = [
  usersModule,
  accountsModule,
  imagesModule,
  quotesModule,
  ordersModule,
];
