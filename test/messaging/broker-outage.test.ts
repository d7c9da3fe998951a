import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createNatsBroker } from '../../src/platform/messaging/nats/index.ts';
import { addToOutbox } from '../../src/platform/messaging/outbox.ts';
import { createRelay } from '../../src/platform/messaging/relay.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import { eventuallyAsync } from './contract.ts';

// A NATS server of the test's own (the machine's nats-server binary, a private port and store), so stopping it
// disturbs no other suite.
const NATS_SERVER = '/usr/sbin/nats-server';
const enabled = Boolean(process.env.NATS_URL) && fs.existsSync(NATS_SERVER);
if (!enabled)
  console.log('[stratum tests] NATS_URL not set (or no nats-server binary): skipping the broker outage test');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe.skipIf(!enabled)('the broker stopped for a while', () => {
  let db: TestDatabase;
  let port: number;
  let store: string;
  let server: ChildProcess | undefined;

  const startNats = async () => {
    server = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((r) => {
        const s = net
          .connect(port, '127.0.0.1', () => {
            s.end();
            r(true);
          })
          .on('error', () => r(false));
      });
      if (up) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the test NATS server did not start');
  };
  const stopNats = async () => {
    const exited = new Promise((r) => server!.once('exit', r));
    server!.kill('SIGTERM');
    await exited;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql`create table public.outage_effects (event_id uuid primary key)`;
    port = await freePort();
    store = fs.mkdtempSync(path.join(os.tmpdir(), 'stratum-nats-'));
    await startNats();
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    await db?.drop();
    fs.rmSync(store, { recursive: true, force: true });
  });

  it('loses nothing: the relay keeps the events while the broker is down and catches up', async () => {
    const broker = await createNatsBroker({
      servers: `nats://127.0.0.1:${port}`,
      namespace: 'outage',
      ackWaitMs: 3000,
    });
    const transaction = createTransaction({ sql: db.sql, defaultDeadlineMs: 5000, now: Date.now, random: Math.random });
    const relay = createRelay({ sql: db.sql, broker, pollMs: 100 });
    await relay.start();
    const subscription = await consume({
      broker,
      transaction,
      group: 'outage',
      handler: async (event, tx) => {
        await tx`insert into public.outage_effects (event_id) values (${event.id})`;
      },
    });
    const write = async (count: number) => {
      for (let i = 0; i < count; i++)
        await transaction({}, (tx) => addToOutbox(tx, { type: 'outage.test', key: `k${i % 5}`, payload: { i } }));
    };
    const effects = () => db.sql<{ n: number }[]>`select count(*)::int as n from public.outage_effects`;
    try {
      await write(20);
      await eventuallyAsync(effects, (r) => r[0]!.n === 20, 'the first 20 effects', 30_000);

      await stopNats();
      await write(30); // commits go on: the events wait in the outbox
      const [waiting] = await db.sql`select count(*)::int as n from messaging.outbox where sent_at is null`;
      expect(waiting!.n).toBeGreaterThan(0);

      await startNats();
      await eventuallyAsync(effects, (r) => r[0]!.n === 50, 'all 50 effects after the broker came back', 60_000);
      await eventuallyAsync(
        () => db.sql`select count(*)::int as n from messaging.outbox where sent_at is null`,
        (r) => r[0]!.n === 0,
        'an empty outbox',
        30_000,
      );
      const ids =
        await db.sql`select count(*)::int as n from messaging.outbox o join public.outage_effects e on e.event_id = o.id`;
      expect(ids[0]!.n).toBe(50);
    } finally {
      await subscription.stop().catch(() => {});
      await relay.stop();
      await broker.close();
    }
  }, 120_000);
});
