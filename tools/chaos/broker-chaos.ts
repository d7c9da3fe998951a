import { randomUUID } from 'node:crypto';
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
}

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
 * applied) and duplicated effects (applied twice).
 */
export async function runBrokerChaos(
  config: Config,
  options: BrokerChaosOptions,
  say: (line: string) => void,
): Promise<BrokerChaosReport> {
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
    const subscription = await consume({
      broker,
      transaction,
      group: GROUP,
      handler: async (event, tx) => {
        await tx`insert into public.chaos_effects (run, event_id) values (${run}, ${event.id})`;
      },
    });
    const relay = createRelay({ sql, broker, pollMs: 200, log: () => {} });
    await relay.start();
    say(
      `chaos broker: ${options.broker} at ${control.host}:${control.port}; ${options.rate} events/s for ${options.duration} s; stop at ${options.stopAt} s for ${options.stopFor} s`,
    );

    let committed = 0;
    let producerFailures = 0;
    const started = Date.now();
    let downAt = 0;
    let upAt = 0;
    const fault = (async () => {
      await new Promise((r) => setTimeout(r, options.stopAt * 1000));
      say(`t=${((Date.now() - started) / 1000).toFixed(1)} s: stopping ${options.broker} (${control.stop})`);
      await runCommand(control.stop);
      await waitForPort(control.host, control.port, false, 30_000);
      downAt = Date.now();
      await new Promise((r) => setTimeout(r, options.stopFor * 1000));
      say(`t=${((Date.now() - started) / 1000).toFixed(1)} s: starting ${options.broker} (${control.start})`);
      await runCommand(control.start);
      await waitForPort(control.host, control.port, true, 60_000);
      upAt = Date.now();
      say(`t=${((Date.now() - started) / 1000).toFixed(1)} s: ${options.broker} is up again`);
    })();
    const inFlight = new Set<Promise<void>>();
    const total = Math.round(options.rate * options.duration);
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / options.rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const write = transaction({ label: 'chaos.produce' }, (tx) =>
        addToOutbox(tx, { type: 'chaos.tick', key: String(i % 64), payload: { i, run } }),
      ).then(
        () => {
          committed++;
        },
        () => {
          producerFailures++;
        },
      );
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
    }
    await Promise.all(inFlight);
    await fault;

    // Drain: every committed event applied, or the timeout.
    const drainUntil = Date.now() + options.drainTimeoutS * 1000;
    let caughtUpAt: number | null = null;
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
    return {
      broker: options.broker,
      eventsCommitted: committed,
      eventsPublished: counts!.published,
      effectsApplied: counts!.distinct_effects,
      eventsLost: lost,
      duplicatedEffects: counts!.effects - counts!.distinct_effects,
      brokerDownSeconds: downAt && upAt ? Math.round((upAt - downAt) / 100) / 10 : 0,
      caughtUpSecondsAfterRestart: caughtUpAt && upAt ? Math.round((caughtUpAt - upAt) / 100) / 10 : null,
      producerFailures,
    };
  } finally {
    await broker?.close().catch(() => {});
    await sql?.end({ timeout: 5 });
    await main.close();
  }
}

export function printBrokerReport(report: BrokerChaosReport, out: (line: string) => void): void {
  out(`broker                         ${report.broker}`);
  out(`events committed               ${report.eventsCommitted}`);
  out(`events published               ${report.eventsPublished}`);
  out(`effects applied                ${report.effectsApplied}`);
  out(`events lost                    ${report.eventsLost}`);
  out(`duplicated effects             ${report.duplicatedEffects}`);
  out(`producer failures              ${report.producerFailures}`);
  out(`broker down                    ${report.brokerDownSeconds} s`);
  out(
    `caught up after restart        ${report.caughtUpSecondsAfterRestart === null ? 'not within the drain timeout' : `${report.caughtUpSecondsAfterRestart} s`}`,
  );
}
