import type { Sql } from '../db/connect.ts';

/**
 * How writers and the relay agree on who wakes the relay, with two advisory locks instead of a NOTIFY per write
 * (PostgreSQL serialises the commits of notifying transactions, each with its own WAL flush).
 *
 * - A writer takes WRITERS shared, held until it commits, and then tests AWAKE: if a relay holds it, the writer
 *   leaves the waking to that relay; otherwise it NOTIFYs.
 * - A relay that finds work holds AWAKE (exclusive, on a connection of its own) and looks again after every
 *   batch. When it finds nothing it lets AWAKE go, and sleeps only once it could take WRITERS exclusive for an
 *   instant (no writer that saw it awake is still committing) and a last look found nothing.
 *
 * The locks are per database: each outbox database has its own relay and its own locks.
 */
export const WRITERS_LOCK = '7809644330946618490';
export const AWAKE_LOCK = '7809644330946618491';

export interface WakeGate {
  /** Holds AWAKE if nobody else does: writers stop notifying. False when another relay holds it, or on error. */
  stayAwake(): Promise<boolean>;
  /** Lets AWAKE go: writers notify again. */
  sleep(): Promise<void>;
  /** True when no writer is between its test of AWAKE and its commit (WRITERS could be taken exclusive). */
  writersSettled(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The relay's side, on a reserved connection (session locks live on one connection); a connection that fails is
 * dropped (the server frees its locks) and reserved again at the next call.
 * @example const gate = createWakeGate(sql); if (await gate.stayAwake()) { ... } await gate.sleep();
 */
export function createWakeGate(sql: Sql): WakeGate {
  let reserved: Awaited<ReturnType<Sql['reserve']>> | undefined;
  let holding = false;

  async function onConnection<T>(use: (conn: NonNullable<typeof reserved>) => Promise<T>, otherwise: T): Promise<T> {
    try {
      reserved ??= await sql.reserve();
      return await use(reserved);
    } catch {
      holding = false;
      const broken = reserved;
      reserved = undefined;
      broken?.release();
      return otherwise;
    }
  }

  return {
    stayAwake: () =>
      onConnection(async (conn) => {
        if (holding) return true;
        const [row] = await conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${AWAKE_LOCK}) as ok`;
        holding = row!.ok;
        return holding;
      }, false),
    sleep: () =>
      onConnection(async (conn) => {
        if (!holding) return;
        await conn`select pg_advisory_unlock(${AWAKE_LOCK})`;
        holding = false;
      }, undefined),
    writersSettled: () =>
      onConnection(async (conn) => {
        const [row] = await conn<{ ok: boolean }[]>`
        select case when pg_try_advisory_lock(${WRITERS_LOCK}) then pg_advisory_unlock(${WRITERS_LOCK}) else false end as ok`;
        return row!.ok;
      }, false),
    async close() {
      if (holding) await onConnection((conn) => conn`select pg_advisory_unlock(${AWAKE_LOCK})`, undefined);
      holding = false;
      reserved?.release();
      reserved = undefined;
    },
  };
}
