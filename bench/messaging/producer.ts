import { performance } from 'node:perf_hooks';
import type { Sql } from '../../src/platform/db/connect.ts';
import { addAllToOutbox, addToOutbox, type NewEvent } from '../../src/platform/messaging/outbox.ts';
import type { ProducerAdd } from './options.ts';
import type { RunTracker } from './tracker.ts';

export interface ProducerOptions {
  sql: Sql;
  /** Offered events per second. */
  rate: number;
  eventsPerTx: number;
  add: ProducerAdd;
  durationMs: number;
  /** Events are keyed `key-0` .. `key-<keys-1>`, round robin. */
  keys: number;
  tracker: RunTracker;
  /** Transactions started and not yet committed beyond which a due one is shed rather than queued. */
  maxInFlight: number;
  log: (message: string, error?: unknown) => void;
}

/** The event type the benchmark writes; its payload is `{ run, n }`. */
export const BENCH_EVENT_TYPE = 'bench.event';

/**
 * An open-model producer: business transactions are due at fixed times (every eventsPerTx / rate seconds)
 * whether or not earlier ones have committed, so a slow commit does not slow the offered rate down. Each one
 * writes `eventsPerTx` outbox events inside `sql.begin`, with one addAllToOutbox (`add: 'all'`) or one addToOutbox
 * per event (`add: 'each'`, sent together); the moment its COMMIT returns is
 * recorded for each event id. Resolves once the last transaction has settled.
 */
export async function produceAtFixedRate(options: ProducerOptions): Promise<void> {
  const { sql, tracker, eventsPerTx } = options;
  const intervalMs = (1000 * eventsPerTx) / options.rate;
  const total = Math.floor(options.durationMs / intervalMs);
  const inFlight = new Set<Promise<void>>();
  let started = 0;
  let n = 0;
  let errorsLogged = 0;

  const commitOne = async (dueAt: number, first: number) => {
    try {
      const events: NewEvent[] = Array.from({ length: eventsPerTx }, (_, i) => ({
        type: BENCH_EVENT_TYPE,
        key: `key-${(first + i) % options.keys}`,
        payload: { run: tracker.run, n: first + i },
      }));
      const ids = (await sql.begin((tx) =>
        options.add === 'all' ? addAllToOutbox(tx, events) : Promise.all(events.map((event) => addToOutbox(tx, event))),
      )) as string[];
      tracker.committed(ids, dueAt, performance.now());
    } catch (error) {
      tracker.producerErrors++;
      if (errorsLogged++ < 3) options.log('producer: a transaction failed', error);
    }
  };

  const t0 = performance.now();
  while (started < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor((now - t0) / intervalMs) + 1);
    for (; started < due; started++) {
      const dueAt = t0 + started * intervalMs;
      if (inFlight.size >= options.maxInFlight) {
        tracker.shed++;
        continue;
      }
      const p = commitOne(dueAt, n);
      n += eventsPerTx;
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    if (started < total) {
      const nextAt = t0 + started * intervalMs;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, nextAt - performance.now())));
    }
  }
  await Promise.all(inFlight);
}
