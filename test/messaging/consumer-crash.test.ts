import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { createPostgresBroker } from '../../src/platform/messaging/postgres/postgres-broker.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import { eventuallyAsync, event } from './contract.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table public.crash_effects (event_id uuid not null)`;
});
afterAll(async () => {
  await db?.drop();
});

describe('a consumer process killed after its effect, before its acknowledgement', () => {
  it('causes no second effect when the event is delivered again', async () => {
    const namespace = `crash${randomUUID().slice(0, 6)}`;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.resolve('test/messaging/fixtures/crashing-consumer.ts'), db.url, namespace],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    const saw = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (output.includes(text)) resolve();
        };
        child.stdout.on('data', (d) => {
          output += d;
          check();
        });
        child.on('exit', () => reject(new Error(`consumer exited before "${text}": ${output}`)));
        check();
      });
    const exited = new Promise((r) => child.on('exit', r));
    await saw('READY');
    const broker = await createPostgresBroker({
      sql: db.pool(4, 'crash-test-broker'),
      ownsPool: true,
      namespace,
      leaseMs: 1000,
      pollMs: 100,
    });
    try {
      const e = event('k', 1);
      await broker.publish([e]);
      await saw(`EFFECT ${e.id}`);
      child.kill('SIGKILL');
      await exited;
      expect((await db.sql`select count(*)::int as n from public.crash_effects where event_id = ${e.id}`)[0]!.n).toBe(
        1,
      );

      // A new consumer takes the partition over once the dead one's lease expires, and gets the event again.
      const delivered: string[] = [];
      const transaction = createTransaction({
        sql: db.sql,
        defaultDeadlineMs: 5000,
        now: Date.now,
        random: Math.random,
      });
      const subscription = await consume({
        broker: {
          ...broker,
          subscribe: (g, o) =>
            broker.subscribe(g, {
              handle: async (d) => {
                delivered.push(d.event.id);
                return o.handle(d);
              },
            }),
        },
        transaction,
        group: 'effects',
        handler: async (ev, tx) => {
          await tx`insert into public.crash_effects (event_id) values (${ev.id})`;
        },
      });
      try {
        await eventuallyAsync(
          async () => delivered,
          (d) => d.includes(e.id),
          'the event to be delivered again',
          30_000,
        );
        expect((await db.sql`select count(*)::int as n from public.crash_effects where event_id = ${e.id}`)[0]!.n).toBe(
          1,
        );
      } finally {
        await subscription.stop();
      }
    } finally {
      child.kill('SIGKILL');
      await broker.close();
    }
  }, 60_000);
});
