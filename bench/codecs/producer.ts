import { performance } from 'node:perf_hooks';
import type { Sql } from '../../src/platform/db/connect.ts';
import { addAllToOutbox, type NewEvent } from '../../src/platform/messaging/outbox.ts';

/** What a producer run did; commit times are `performance.now()` values, by event id. */
export interface ProducerLog {
  committedAt: Map<string, number>;
  transactions: number;
  /** Transactions not started because too many were already waiting: the producer could not keep up. */
  shed: number;
  errors: number;
  /** Due time to COMMIT returning, per transaction, ms. */
  commitLagMs: number[];
}

export interface ProducerOptions {
  sql: Sql;
  /** Offered events per second. */
  rate: number;
  eventsPerTx: number;
  durationMs: number;
  /** The events written, cycled through in order (`addAllToOutbox` draws a new id for each write). */
  events: readonly NewEvent[];
  log: (message: string, error?: unknown) => void;
}

/**
 * Open model: a transaction of `eventsPerTx` outbox events (one addAllToOutbox statement inside sql.begin, as a
 * business write does it) is due every eventsPerTx / rate seconds whether or not the earlier ones have
 * committed. More than two seconds of them waiting and a due one is shed. Resolves once the last has settled.
 */
export async function produce(options: ProducerOptions): Promise<ProducerLog> {
  const { sql, eventsPerTx, events } = options;
  const result: ProducerLog = { committedAt: new Map(), transactions: 0, shed: 0, errors: 0, commitLagMs: [] };
  const intervalMs = (1000 * eventsPerTx) / options.rate;
  const total = Math.floor(options.durationMs / intervalMs);
  const maxInFlight = Math.max(16, Math.ceil((2 * options.rate) / eventsPerTx));
  const inFlight = new Set<Promise<void>>();
  let next = 0;
  let errorsLogged = 0;

  const commitOne = async (dueAt: number, batch: NewEvent[]) => {
    try {
      const ids = (await sql.begin((tx) => addAllToOutbox(tx, batch))) as string[];
      const at = performance.now();
      for (const id of ids) result.committedAt.set(id, at);
      result.transactions++;
      result.commitLagMs.push(at - dueAt);
    } catch (error) {
      result.errors++;
      if (errorsLogged++ < 3) options.log('producer: a transaction failed', error);
    }
  };

  const t0 = performance.now();
  let started = 0;
  while (started < total) {
    const due = Math.min(total, Math.floor((performance.now() - t0) / intervalMs) + 1);
    for (; started < due; started++) {
      if (inFlight.size >= maxInFlight) {
        result.shed++;
        continue;
      }
      const batch = Array.from({ length: eventsPerTx }, () => events[next++ % events.length]!);
      const p = commitOne(t0 + started * intervalMs, batch);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    if (started < total)
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + started * intervalMs - performance.now())));
  }
  await Promise.all(inFlight);
  return result;
}
