import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sql } from '../../src/platform/db/connect.ts';
import type { TransactionFn } from '../../src/platform/db/transaction.ts';
import type { Broker, Delivery, OutboxEvent, Subscription } from '../../src/platform/messaging/broker.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { createRelay, type Relay } from '../../src/platform/messaging/relay.ts';
import { cpuBetween, sampleCpu } from '../support/cpu-time.ts';
import type { BrokerTarget } from './brokers.ts';
import type { ProducerAdd } from './options.ts';
import { produceAtFixedRate } from './producer.ts';
import { RunTracker, type RunMeasurement } from './tracker.ts';

export interface BrokerRunOptions {
  target: BrokerTarget;
  /** Pools: the producer's business transactions; the relay's and the postgres broker's (stratum's admin pool); the consumer runner's. */
  producerSql: Sql;
  adminSql: Sql;
  transaction: TransactionFn;
  rates: readonly number[];
  durationMs: number;
  eventsPerTx: number;
  add: ProducerAdd;
  transactionsAtOnce: number;
  progress: (line: string) => void;
}

export interface RateResult {
  broker: string;
  rate: number;
  measurement: RunMeasurement;
  /** The load window's CPU: this process in % of one core, the machine in % of all cores. */
  cpu: { self: number; machine: number };
  /** How late this process's event loop ran timers during the load window, p99 in ms: the bench process's own saturation. */
  eventLoopDelayP99: number;
  /** Set when the drain stopped before every committed event was handled. */
  drainNote?: string;
}

export interface BrokerRunResult {
  results: RateResult[];
  /** Warnings the relay, broker and consumer logged, counted by message. */
  warnings: Map<string, number>;
  cleanUpNote?: string;
}

const GROUP = 'bench';
const KEYS = 64;
const WARM_UP_MS = 3000;
/** Draining after a run stops once everything is handled, after this long without progress, or at the cap. */
const DRAIN_STALL_MS = 5000;
const DRAIN_CAP_MS = 15_000;

/**
 * One broker: a relay (started, waking on NOTIFY) and one consumer of group `bench` through `consume()`, then
 * an untimed warm-up and a timed run per rate with a drain after each. The broker is opened in a namespace of
 * its own and cleaned up after.
 */
export async function runBroker(options: BrokerRunOptions): Promise<BrokerRunResult> {
  const { target, progress } = options;
  const warnings = new Map<string, number>();
  const log = (message: string, error?: unknown) => {
    const line = error instanceof Error ? `${message}: ${error.message}` : message;
    if (!warnings.has(line)) progress(`${target.name}: ${line}`);
    warnings.set(line, (warnings.get(line) ?? 0) + 1);
  };
  // Lower-case letters, digits and "-": a valid NATS stream prefix, RabbitMQ name part and Redis key prefix.
  const namespace = `bench-${randomUUID().slice(0, 8)}`;
  const trackers = new Map<string, RunTracker>();
  const runOf = (payload: unknown) => (payload as { run?: string } | null)?.run;

  let broker: Broker | undefined;
  let relay: Relay | undefined;
  let subscription: Subscription | undefined;
  const results: RateResult[] = [];
  let cleanUpNote: string | undefined;
  try {
    broker = await target.open(namespace, GROUP, log);
    const observed = observeBroker(broker, (event) => trackers.get(runOf(event.payload) ?? ''));
    subscription = await consume({
      broker: observed,
      transaction: options.transaction,
      group: GROUP,
      transactionsAtOnce: options.transactionsAtOnce,
      handler: async (event) => {
        const at = performance.now();
        trackers.get(runOf(event.payload) ?? '')?.handled(event.id, at);
      },
      onError: (_event, attempt, error) => log(`consumer: attempt ${attempt} failed`, error),
    });
    relay = createRelay({ sql: options.adminSql, broker: observed, log });
    await relay.start();

    const warmUpRate = Math.min(...options.rates);
    progress(`${target.name}: warm-up, ${WARM_UP_MS / 1000} s at ${warmUpRate} events/s (namespace ${namespace})`);
    await loadAndDrain({ ...options, rate: warmUpRate, durationMs: WARM_UP_MS, trackers, log });

    for (const rate of options.rates) {
      progress(`${target.name}: ${rate} events/s for ${options.durationMs / 1000} s`);
      const result = await loadAndDrain({ ...options, rate, trackers, log });
      results.push(result);
      const m = result.measurement;
      progress(
        `${target.name} ${rate}/s: ${Math.round(m.ackedPerSecond)} acked/s, p50 ${m.latency?.p50.toFixed(1)} ms, ` +
          `p99 ${m.latency?.p99.toFixed(1)} ms, max ${m.latency?.max.toFixed(1)} ms, lost ${m.lost}${result.drainNote ? ` (${result.drainNote})` : ''}`,
      );
    }
  } finally {
    await relay?.stop().catch((e: unknown) => log('stopping the relay', e));
    await subscription?.stop().catch((e: unknown) => log('stopping the consumer', e));
    await broker?.close().catch((e: unknown) => log('closing the broker', e));
    try {
      cleanUpNote = await target.cleanUp(namespace, GROUP, broker?.partitions ?? 8);
    } catch (error) {
      cleanUpNote = `namespace ${namespace} left on ${target.where}: ${(error as Error).message}`;
    }
  }
  return { results, warnings, cleanUpNote };
}

interface LoadOptions extends BrokerRunOptions {
  rate: number;
  trackers: Map<string, RunTracker>;
  log: (message: string, error?: unknown) => void;
}

/** Offers `rate` for `durationMs`, waits for the consumer to handle what was committed, and measures. */
async function loadAndDrain(options: LoadOptions): Promise<RateResult> {
  const tracker = new RunTracker(randomUUID());
  options.trackers.set(tracker.run, tracker);
  const cpuBefore = sampleCpu(process.pid);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const windowStart = performance.now();
  await produceAtFixedRate({
    sql: options.producerSql,
    rate: options.rate,
    eventsPerTx: options.eventsPerTx,
    add: options.add,
    durationMs: options.durationMs,
    keys: KEYS,
    tracker,
    log: options.log,
    // Two seconds of offered load may wait for a connection; past that the producer is behind and sheds.
    maxInFlight: Math.max(16, Math.ceil((2 * options.rate) / options.eventsPerTx)),
  });
  const windowEnd = windowStart + options.durationMs;
  const cpu = cpuBetween(cpuBefore, sampleCpu(process.pid));
  loopDelay.disable();
  const drainNote = await drain(tracker);
  options.trackers.delete(tracker.run);
  return {
    broker: options.target.name,
    rate: options.rate,
    measurement: tracker.measure(windowStart, windowEnd, performance.now()),
    cpu: { self: cpu.self, machine: cpu.machine },
    eventLoopDelayP99: loopDelay.percentile(99) / 1e6,
    drainNote,
  };
}

async function drain(tracker: RunTracker): Promise<string | undefined> {
  const started = performance.now();
  let lastProgressAt = started;
  let last = tracker.handledCount;
  while (tracker.handledCount < tracker.committedCount) {
    await sleep(50);
    const now = performance.now();
    if (tracker.handledCount !== last) {
      last = tracker.handledCount;
      lastProgressAt = now;
    }
    if (now - lastProgressAt > DRAIN_STALL_MS)
      return `no event handled in the last ${DRAIN_STALL_MS / 1000} s of the drain`;
    if (now - started > DRAIN_CAP_MS) return `still draining after ${DRAIN_CAP_MS / 1000} s`;
  }
  // The runner acknowledges right after the handler's transaction commits; give the last ones a moment.
  await sleep(200);
  return undefined;
}

/**
 * The broker as the relay and `consume()` see it, telling each event's tracker when the relay began and finished
 * publishing it, when the runner got it, and when the runner handed back its acknowledgement (the adapter's own
 * ack to the broker follows that).
 */
function observeBroker(broker: Broker, trackerOf: (event: OutboxEvent) => RunTracker | undefined): Broker {
  return {
    name: broker.name,
    partitions: broker.partitions,
    deadLetters: broker.deadLetters,
    async publish(events) {
      const startedAt = performance.now();
      await broker.publish(events);
      const doneAt = performance.now();
      if (events[0]) trackerOf(events[0])?.relayBatch(events.length);
      for (const event of events) {
        const tracker = trackerOf(event);
        tracker?.publishing(event.id, startedAt);
        tracker?.published(event.id, doneAt);
      }
    },
    ...(broker.outboxAppender
      ? {
          outboxAppender: {
            sql: broker.outboxAppender.sql,
            appendFromOutbox(db, claimed) {
              // Published once the relay's transaction commits, a moment after the statement returns.
              const startedAt = performance.now();
              const statement = broker.outboxAppender!.appendFromOutbox(db, claimed);
              void statement.then(
                (rows) => {
                  const doneAt = performance.now();
                  if (rows[0]) trackerOf(rows[0].event)?.relayBatch(rows.length);
                  for (const { event } of rows) {
                    const tracker = trackerOf(event);
                    tracker?.publishing(event.id, startedAt);
                    tracker?.published(event.id, doneAt);
                  }
                },
                () => {},
              );
              return statement;
            },
          },
        }
      : {}),
    subscribe: (group, subscribeOptions) =>
      broker.subscribe(group, {
        ...subscribeOptions,
        async handle(delivery) {
          const tracker = trackerOf(delivery.event);
          tracker?.delivered(delivery.event.id, delivery.partition, performance.now());
          const outcome = await subscribeOptions.handle(delivery);
          if (outcome.kind === 'ack') tracker?.acked(delivery.event.id, delivery.partition, performance.now());
          return outcome;
        },
        ...(subscribeOptions.handleBatch
          ? {
              async handleBatch(deliveries: Delivery[]) {
                const at = performance.now();
                for (const d of deliveries) trackerOf(d.event)?.delivered(d.event.id, d.partition, at);
                const outcomes = await subscribeOptions.handleBatch!(deliveries);
                const done = performance.now();
                deliveries.forEach((d, i) => {
                  if (outcomes[i]!.kind === 'ack') trackerOf(d.event)?.acked(d.event.id, d.partition, done);
                });
                return outcomes;
              },
            }
          : {}),
      }),
    follow: (listener) => broker.follow(listener),
    close: () => broker.close(),
  };
}
