import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Config } from '../../src/config/config.ts';
import { openDatabase } from '../../src/app/database.ts';
import { createPool, type Sql } from '../../src/platform/db/connect.ts';
import { createTransaction } from '../../src/platform/db/transaction.ts';
import type { Broker } from '../../src/platform/messaging/broker.ts';
import { consume } from '../../src/platform/messaging/consumer.ts';
import { addToOutbox } from '../../src/platform/messaging/outbox.ts';
import { createRelay } from '../../src/platform/messaging/relay.ts';
import { createMainMigrator } from '../../src/app/migrations.ts';
import { createDatabaseIfMissing, databaseOf, targetForDatabase } from '../../src/platform/sharding/shard-set.ts';
import type { ReportWindow } from '../loadtest/html-report.ts';
import { RECENT_S, startProgress, type ProgressOutput } from '../loadtest/progress.ts';
import { createTimeline, type Timeline } from '../loadtest/timeline.ts';
import { defaultControl, runCommand, waitForPort, type BrokerControl } from './broker-control.ts';

export interface BrokerChaosOptions {
  broker: 'rabbitmq' | 'nats';
  url: string;
  rate: number;
  duration: number;
  stopAt: number;
  stopFor: number;
  control?: Partial<BrokerControl>;
  /** Longest wait after the load for the consumer to catch up. */
  drainTimeoutS: number;
}

export interface BrokerChaosReport {
  broker: string;
  eventsCommitted: number;
  eventsPublished: number;
  effectsApplied: number;
  eventsLost: number;
  duplicatedEffects: number;
  brokerDownSeconds: number;
  caughtUpSecondsAfterRestart: number | null;
  producerFailures: number;
  /** Times the relay failed to publish a batch and tried again (the broker down, mostly). */
  publishRetries: number;
  /** Times the consumer's handler failed and the delivery was tried again. */
  handlerRetries: number;
}

/** A broker run: its report, and what its HTML report charts. */
export interface BrokerChaosRun {
  report: BrokerChaosReport;
  /** The outbox writes ('produce') per second, with the effects applied and the retries as counters. */
  timeline: Timeline;
  /** The broker from its stop command to being up again, in seconds from the start of the load. */
  windows: ReportWindow[];
  startedAt: Date;
}

/** The per-second counters of a broker run. */
export const APPLIED = 'effects applied';
export const PUBLISH_RETRIES = 'publish retries';

const GROUP = 'chaos.effects';

async function openChaosBroker(options: BrokerChaosOptions, namespace: string): Promise<Broker> {
  const log = () => {};
  if (options.broker === 'rabbitmq') {
    const { createRabbitMqBroker } = await import('../../src/platform/messaging/rabbitmq/index.ts');
    return createRabbitMqBroker({ url: options.url, namespace, groups: [GROUP], log });
  }
  const { createNatsBroker } = await import('../../src/platform/messaging/nats/index.ts');
  return createNatsBroker({ servers: options.url, namespace, log });
}

/**
 * Events through the outbox, the relay and `options.broker` to a consumer whose effect is a row per delivery
 * handled, while the broker is stopped at `stopAt` for `stopFor` seconds and started again. Runs in a database
 * of its own (<main>_chaos), so no running stratum relays its events. Reports events lost (committed, never
 * applied) and duplicated effects (applied twice). A progress line goes to `output` during the load and the drain
 * (by default one line to `say` every 5 s).
 */
export async function runBrokerChaos(
  config: Config,
  options: BrokerChaosOptions,
  say: (line: string) => void,
  output: ProgressOutput = { tty: false, write: say },
): Promise<BrokerChaosRun> {
  const control = { ...defaultControl(options.broker, options.url), ...options.control };
  const main = await openDatabase(config, 'command', say);
  let sql: Sql | undefined;
  let broker: Broker | undefined;
  try {
    const database = `${databaseOf(main.target)}_chaos`;
    await createDatabaseIfMissing(main.target, database);
    sql = createPool(targetForDatabase(main.target, database), { max: 12, applicationName: 'stratum-chaos' });
    await createMainMigrator(sql).up();
    await sql`create table if not exists public.chaos_effects (run text not null, event_id uuid not null, applied_at timestamptz not null default clock_timestamp())`;
    const run = randomUUID().slice(0, 8);
    const transaction = createTransaction({ sql, defaultDeadlineMs: 10_000, now: Date.now, random: Math.random });
    broker = await openChaosBroker(options, `stratum-chaos-${run}`);
    const db = sql;
    const timeline = createTimeline(['produce']);
    let publishRetries = 0;
    let handlerRetries = 0;
    const subscription = await consume({
      broker,
      transaction,
      group: GROUP,
      handler: async (event, tx) => {
        await tx`insert into public.chaos_effects (run, event_id) values (${run}, ${event.id})`;
      },
      onError: () => {
        handlerRetries++;
      },
    });
    const relay = createRelay({
      sql,
      broker,
      pollMs: 200,
      log: (message) => {
        if (!message.includes('will retry')) return;
        publishRetries++;
        timeline.count(PUBLISH_RETRIES, 1);
      },
    });
    await relay.start();
    say(
      `chaos broker: ${options.broker} at ${control.host}:${control.port}; ${options.rate} events/s for ${options.duration} s; stop at ${options.stopAt} s for ${options.stopFor} s`,
    );

    let committed = 0;
    let producerFailures = 0;
    let sent = 0;
    let applied = 0;
    const inFlight = new Set<Promise<void>>();
    const startedAt = new Date();
    const started = Date.now();
    const startedPerf = performance.now();
    timeline.begin(startedPerf);
    const seconds = () => (performance.now() - startedPerf) / 1000;
    const progress = startProgress(
      'chaos',
      () => ({
        elapsedS: seconds(),
        totalS: options.duration,
        sent,
        answered: committed,
        errors: producerFailures,
        p99Ms: timeline.recentP99(RECENT_S),
        inFlight: inFlight.size,
        extra: `applied ${applied}`,
      }),
      output,
      say,
    );
    // The effects applied so far, once a second, for the chart of effects applied per second.
    let polling: Promise<void> | undefined;
    const poll = setInterval(() => {
      polling ??= db<{ n: number }[]>`select count(*)::int as n from public.chaos_effects where run = ${run}`
        .then(([row]) => {
          timeline.count(APPLIED, row!.n - applied);
          applied = row!.n;
        })
        .catch(() => {})
        .finally(() => {
          polling = undefined;
        });
    }, 1000);
    let downAt = 0;
    let upAt = 0;
    let stopFromS = options.stopAt;
    let upAgainS = options.stopAt + options.stopFor;
    const fault = (async () => {
      await new Promise((r) => setTimeout(r, options.stopAt * 1000));
      stopFromS = seconds();
      progress.log(`t=${stopFromS.toFixed(1)} s: stopping ${options.broker} (${control.stop})`);
      await runCommand(control.stop);
      await waitForPort(control.host, control.port, false, 30_000);
      downAt = Date.now();
      await new Promise((r) => setTimeout(r, options.stopFor * 1000));
      progress.log(`t=${seconds().toFixed(1)} s: starting ${options.broker} (${control.start})`);
      await runCommand(control.start);
      await waitForPort(control.host, control.port, true, 60_000);
      upAt = Date.now();
      upAgainS = seconds();
      progress.log(`t=${upAgainS.toFixed(1)} s: ${options.broker} is up again`);
    })();
    const total = Math.round(options.rate * options.duration);
    let caughtUpAt: number | null = null;
    try {
      for (let i = 0; i < total; i++) {
        const due = started + (i * 1000) / options.rate;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        // Latency from when the write was due, as the open-model load measures it.
        const dueAt = startedPerf + (i * 1000) / options.rate;
        sent++;
        timeline.started('produce');
        const write = transaction({ label: 'chaos.produce' }, (tx) =>
          addToOutbox(tx, { type: 'chaos.tick', key: String(i % 64), payload: { i, run } }),
        ).then(
          () => {
            committed++;
            timeline.settled('produce', 'committed', true, performance.now() - dueAt);
          },
          (error: unknown) => {
            producerFailures++;
            timeline.settled('produce', failureCode(error), false, null);
          },
        );
        inFlight.add(write);
        void write.finally(() => inFlight.delete(write));
      }
      await Promise.all(inFlight);
      await fault;

      // Drain: every committed event applied, or the timeout.
      const drainUntil = Date.now() + options.drainTimeoutS * 1000;
      for (;;) {
        const [row] = await db<
          { distinct_effects: number }[]
        >`select count(distinct event_id)::int as distinct_effects from public.chaos_effects where run = ${run}`;
        if (row!.distinct_effects >= committed) {
          caughtUpAt = Date.now();
          break;
        }
        if (Date.now() > drainUntil) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      clearInterval(poll);
      await polling;
      progress.stop();
    }
    await subscription.stop();
    await relay.stop();
    const [counts] = await db<{ published: number; effects: number; distinct_effects: number }[]>`
      select (select count(*)::int from messaging.outbox where sent_at is not null and payload->>'run' = ${run}) as published,
             (select count(*)::int from public.chaos_effects where run = ${run}) as effects,
             (select count(distinct event_id)::int from public.chaos_effects where run = ${run}) as distinct_effects`;
    const lost = (
      await db<{ n: number }[]>`
      select count(*)::int as n from messaging.outbox o where o.payload->>'run' = ${run}
        and not exists (select 1 from public.chaos_effects e where e.run = ${run} and e.event_id = o.id)`
    )[0]!.n;
    const report: BrokerChaosReport = {
      broker: options.broker,
      eventsCommitted: committed,
      eventsPublished: counts!.published,
      effectsApplied: counts!.distinct_effects,
      eventsLost: lost,
      duplicatedEffects: counts!.effects - counts!.distinct_effects,
      brokerDownSeconds: downAt && upAt ? Math.round((upAt - downAt) / 100) / 10 : 0,
      caughtUpSecondsAfterRestart: caughtUpAt && upAt ? Math.round((caughtUpAt - upAt) / 100) / 10 : null,
      producerFailures,
      publishRetries,
      handlerRetries,
    };
    const windows = [{ label: `${options.broker} down`, fromS: stopFromS, toS: upAgainS }];
    return { report, timeline, windows, startedAt };
  } finally {
    await broker?.close().catch(() => {});
    await sql?.end({ timeout: 5 });
    await main.close();
  }
}

/** What a failed outbox write is counted under: its AppError or driver code, else its name. */
function failureCode(error: unknown): string {
  const e = error as { code?: unknown; name?: unknown } | null | undefined;
  if (typeof e?.code === 'string' && e.code.length > 0) return e.code;
  return typeof e?.name === 'string' ? e.name : 'failed';
}

export function printBrokerReport(report: BrokerChaosReport, out: (line: string) => void): void {
  out(`broker                         ${report.broker}`);
  out(`events committed               ${report.eventsCommitted}`);
  out(`events published               ${report.eventsPublished}`);
  out(`effects applied                ${report.effectsApplied}`);
  out(`events lost                    ${report.eventsLost}`);
  out(`duplicated effects             ${report.duplicatedEffects}`);
  out(`producer failures              ${report.producerFailures}`);
  out(`retried                        ${report.publishRetries} publishes, ${report.handlerRetries} deliveries`);
  out(`broker down                    ${report.brokerDownSeconds} s`);
  out(
    `caught up after restart        ${report.caughtUpSecondsAfterRestart === null ? 'not within the drain timeout' : `${report.caughtUpSecondsAfterRestart} s`}`,
  );
}
