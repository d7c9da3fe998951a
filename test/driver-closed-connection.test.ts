import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// The driver patch (patches/postgres+3.4.9.patch): a reserved or transaction connection whose server session
// ends must reject what is still sent on it, never crash the process from a timer (porsager/postgres#1208),
// never run it on the connection the pool reopens for someone else, and never return a dead connection to the
// pool. Without the patch the first case below ends the test process with an uncaught TypeError.

let db: TestDatabase;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await db.sql`create table driver_marks (id serial primary key, note text not null)`;
});

afterAll(async () => {
  await db?.drop();
});

async function terminate(pid: number) {
  const [row] = await db.sql`select pg_terminate_backend(${pid}::int) as done`;
  expect(row!.done).toBe(true);
  // Let the client see the socket close before it sends more.
  await sleep(100);
}

describe('postgres.js after the server ends a reserved or transaction session', () => {
  it('rejects queries on a reserved connection, keeps release() from returning it, and the pool recovers', async () => {
    const pool = db.pool(2, `${db.applicationName}-reserve`);
    const reserved = await pool.reserve();
    const [row] = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await terminate(row!.pid);
    const error = await reserved`select 1`.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as { code?: string }).code).toBe('CONNECTION_CLOSED');
    reserved.release();
    // Every pooled connection answers again: none was handed back without a socket.
    const rows = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => pool<{ i: number }[]>`select ${i}::int as i`));
    expect(rows.map((r) => r[0]!.i)).toEqual([1, 2, 3, 4, 5, 6]);
    await pool.end({ timeout: 1 });
  });

  it('rejects a transaction whose session ended and runs none of its later statements anywhere', async () => {
    const pool = db.pool(1, `${db.applicationName}-begin`);
    let later: unknown;
    let finished!: () => void;
    const scopeDone = new Promise<void>((r) => {
      finished = r;
    });
    const outcome = pool
      .begin(async (tx) => {
        const [row] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
        await terminate(row!.pid);
        // Another caller is waiting for the pool's only connection, which the pool reopens for it at once.
        const other = pool`select 'other'::text as v`.execute();
        try {
          await tx`insert into driver_marks (note) values ('after the session ended')`;
        } catch (e) {
          later = e;
        }
        await other;
        try {
          await tx`insert into driver_marks (note) values ('second statement after the session ended')`;
        } finally {
          finished();
        }
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // begin() rejects as soon as the connection closes; the callback goes on until its own statements fail.
    const error = await outcome;
    await scopeDone;
    expect(['CONNECTION_CLOSED', '57P01']).toContain((error as { code?: string }).code);
    expect((later as { code?: string } | undefined)?.code).toBe('CONNECTION_CLOSED');
    await sleep(100);
    const marks = await db.sql`select note from driver_marks`;
    expect(marks).toHaveLength(0);
    const [row] = await pool<{ ok: number }[]>`select 1::int as ok`;
    expect(row!.ok).toBe(1);
    await pool.end({ timeout: 1 });
  });
});
