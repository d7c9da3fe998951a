import { afterAll, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createPostgresBroker } from '../../src/platform/messaging/postgres/postgres-broker.ts';
import { describeBrokerContract } from './contract.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describeBrokerContract({
  name: 'postgres',
  make: (namespace) =>
    createPostgresBroker({
      sql: db.pool(4, `${db.applicationName}-broker`),
      ownsPool: true,
      namespace,
      leaseMs: 1500,
      pollMs: 200,
    }),
});
