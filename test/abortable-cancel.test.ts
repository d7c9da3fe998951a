import net from 'node:net';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { abortable } from '../src/platform/db/abortable.ts';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

describe('abortable', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  afterAll(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  it('survives a cancel request that cannot reach the server (the server is gone in a failover)', async () => {
    const target = new URL(url);
    let sockets = 0;
    // The first socket reaches the real server; later ones (the cancel request's) go to a port nobody listens on.
    const closed = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(port));
      });
    });
    const sql = postgres(url, {
      max: 1,
      onnotice: () => {},
      // postgres.js takes a socket factory; its types do not say so.
      ...({
        socket: () =>
          net.connect(
            sockets++ === 0
              ? { host: target.hostname, port: Number(target.port || 5432) }
              : { host: '127.0.0.1', port: closed },
          ),
      } as object),
    });
    try {
      await sql`select 1`;
      const controller = new AbortController();
      const running = abortable(sql`select pg_sleep(0.5) as slept`, controller.signal);
      setTimeout(() => controller.abort(new Error('gave up')), 100);
      const rows = await running;
      expect(rows).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 200));
      expect(sockets).toBeGreaterThan(1);
      expect(unhandled).toEqual([]);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('leaves a statement queued behind another on its connection alone, and the next one gets its own answer', async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql`select 1`;
      const first = sql`select pg_sleep(0.3), 'first' as v`.execute();
      await new Promise((r) => setTimeout(r, 10));
      const controller = new AbortController();
      const statement = sql`select 'queued' as v`.execute();
      const queued = abortable(statement, controller.signal);
      const next = sql`select 'next' as v`.execute();
      setTimeout(() => controller.abort(new Error('gave up')), 100);
      const [, own, after] = await Promise.allSettled([first, queued, next]);
      expect(own).toEqual({ status: 'fulfilled', value: [{ v: 'queued' }] });
      expect(after).toEqual({ status: 'fulfilled', value: [{ v: 'next' }] });
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});
