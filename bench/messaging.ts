import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { createPool, type Sql } from '../src/platform/db/connect.ts';
import { createTransaction } from '../src/platform/db/transaction.ts';
import { runBroker, type RateResult } from './messaging/broker-run.ts';
import { brokerTarget } from './messaging/brokers.ts';
import { openMessagingDatabase, type MessagingDatabase } from './messaging/database.ts';
import { parseMessagingOptions, type MessagingBenchOptions } from './messaging/options.ts';
import {
  formatDiagnosticsTable,
  formatResultsTable,
  formatStagesTable,
  formatTargetLines,
} from './messaging/report.ts';

/**
 * Outbox to consumer through each broker adapter at fixed offered rates: events per second acknowledged and
 * commit-to-handler latency; see docs/benchmarks.md. Prints markdown on stdout and progress on stderr.
 */
export async function runMessagingBench(argv: readonly string[]): Promise<void> {
  const options = parseMessagingOptions(argv);
  const started = performance.now();
  progress('starting PostgreSQL and migrating the benchmark database');
  const database = await openMessagingDatabase(process.env);
  // Pools as stratum would have them: business writes, the admin pool (relay and postgres broker), the consumer runner's.
  const producerSql = createPool(
    { url: database.url },
    { max: 16, applicationName: 'stratum-bench-producer', idleTimeoutSeconds: 3600 },
  );
  const adminSql = createPool(
    { url: database.url },
    { max: 10, applicationName: 'stratum-bench-admin', idleTimeoutSeconds: 3600 },
  );
  const consumerSql = createPool(
    { url: database.url },
    { max: 10, applicationName: 'stratum-bench-consumer', idleTimeoutSeconds: 3600 },
  );
  const transaction = createTransaction({
    sql: consumerSql,
    defaultDeadlineMs: 2000,
    now: Date.now,
    random: Math.random,
  });
  const results: RateResult[] = [];
  const notes: string[] = [];
  try {
    for (const name of options.brokers) {
      const target = brokerTarget(name, process.env, adminSql);
      if ('missing' in target) {
        notes.push(`- ${name}: not run, ${target.missing}`);
        progress(`${name}: skipped, ${target.missing}`);
        continue;
      }
      await database.reset(adminSql);
      try {
        const run = await runBroker({
          target,
          producerSql,
          adminSql,
          transaction,
          rates: options.rates,
          durationMs: options.durationSeconds * 1000,
          eventsPerTx: options.eventsPerTx,
          add: options.add,
          transactionsAtOnce: options.transactionsAtOnce,
          progress,
        });
        results.push(...run.results);
        if (run.cleanUpNote) notes.push(`- ${name}: ${run.cleanUpNote}`);
        for (const [warning, count] of run.warnings) notes.push(`- ${name} logged ${count} time(s): ${warning}`);
      } catch (error) {
        notes.push(`- ${name} (${target.where}): failed, ${(error as Error).message}`);
        progress(`${name}: failed: ${(error as Error).stack ?? error}`);
      }
    }
    console.log(
      [
        heading(options, database),
        formatResultsTable(results),
        '',
        formatTargetLines(results),
        '',
        'What the producer managed, and the rest of the story:',
        '',
        formatDiagnosticsTable(results),
        '',
        'Where the time went, p50 / p99 ms of each step (events handled in the run; see docs/benchmarks.md):',
        '',
        formatStagesTable(results),
        ...(notes.length > 0 ? ['', 'Notes:', '', ...notes] : []),
      ].join('\n'),
    );
  } finally {
    await Promise.all([producerSql, adminSql, consumerSql].map((sql: Sql) => sql.end({ timeout: 5 })));
    await database.close();
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

function heading(options: MessagingBenchOptions, database: MessagingDatabase): string {
  const cpus = os.cpus();
  return [
    '## Messaging: outbox to consumer through each broker',
    '',
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, ` +
      `Node ${process.version}, PostgreSQL ${database.version} (${database.source})`,
    '',
    `One process holds the producer, the relay (createRelay, defaults: batches of 500, woken by NOTIFY while asleep, looking again ` +
      `after every batch while awake, a 1 s poll; with the PostgreSQL broker, which shares its pool, it appends to the log inside ` +
      `its own transaction) and one consumer of one group (consume(): the consecutive events the adapter ` +
      `hands over together in one transaction with processed_messages, at most ${options.transactionsAtOnce} such transactions at once, ` +
      `what partitions hand over meanwhile going together into the next). The producer is open-model: ` +
      `a business transaction of ${options.eventsPerTx} outbox event(s) (${options.add === 'all' ? 'one addAllToOutbox statement' : 'one addToOutbox statement per event'} inside sql.begin) is due every ` +
      `${options.eventsPerTx}/rate s whatever the earlier ones are doing; keys round robin over 64. ${options.durationSeconds} s per rate after a 3 s warm-up per broker, ` +
      'then a drain. Latency runs from the moment COMMIT returned to the producer to the moment the handler ran; ' +
      '"achieved" counts the events the consumer runner acknowledged inside the load window (its transaction committed, the ack handed to ' +
      'the adapter), per second of it; "lost" counts committed events whose handler never ran. p99 is nearest rank.',
    '',
  ].join('\n');
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
