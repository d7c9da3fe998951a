import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { declaredEvents } from '../src/app/messaging.ts';
import { createPool, type Sql } from '../src/platform/db/connect.ts';
import { EVENT_ENCODINGS } from '../src/platform/messaging/codec/event-codec.ts';
import { openCodecsDatabase, type CodecsDatabase } from './codecs/database.ts';
import { runMicro, type MicroRun } from './codecs/micro.ts';
import { parseCodecsOptions, type CodecsBenchOptions } from './codecs/options.ts';
import { runRelay } from './codecs/relay-run.ts';
import {
  formatCatalogueSources,
  formatE2eDiagnostics,
  formatE2eRatios,
  formatE2eTable,
  formatE2eVerdicts,
  formatMicroRatios,
  formatMicroTable,
  type E2eRun,
} from './codecs/report.ts';

/** Distinct sample events per type a micro sample cycles through. */
const EVENTS_PER_TYPE = 64;
const WARM_UP_MS = 300;
const E2E_WARM_UP_MS = 3000;

/**
 * The event codec's encodings (JSON, MessagePack, Protocol Buffers) side by side, in one run: encode and decode
 * throughput and body size of every declared event type, then each encoding end to end (outbox, the relay,
 * RabbitMQ with the codec, a group subscription) at a steady rate. See docs/benchmarks.md. Prints markdown on
 * stdout and progress on stderr.
 */
export async function runCodecsBench(argv: readonly string[]): Promise<void> {
  const options = parseCodecsOptions(argv);
  const started = performance.now();
  const loadAtStart = os.loadavg();
  const events = declaredEvents();

  progress(`micro: ${events.length} event types x ${EVENT_ENCODINGS.length} encodings, ${options.rounds} rounds`);
  const micro = runMicro({
    events,
    rounds: options.rounds,
    sampleMs: options.sampleMs,
    warmUpMs: WARM_UP_MS,
    eventsPerType: EVENTS_PER_TYPE,
    progress,
  });

  const runs: E2eRun[] = [];
  const notes: string[] = [];
  let database: CodecsDatabase | undefined;
  const rabbitUrl = process.env.RABBITMQ_URL?.trim() || 'amqp://guest:guest@127.0.0.1:5672';
  if (options.e2e) {
    progress('end to end: preparing the benchmark database');
    database = await openCodecsDatabase(process.env);
    const producerSql = createPool(
      { url: database.url },
      { max: 16, applicationName: 'stratum-bench-codecs-producer', idleTimeoutSeconds: 3600 },
    );
    // As openRelayPool gives a relay: two connections of its own (its batch transaction, its wake gate's locks).
    const relaySql = createPool(
      { url: database.url },
      {
        max: 2,
        applicationName: 'stratum-bench-codecs-relay',
        idleTimeoutSeconds: 3600,
        connectTimeoutSeconds: 5,
        acquireWaitMs: 10_000,
      },
    );
    try {
      for (let round = 1; round <= options.e2eRounds; round++) {
        const list = options.e2eEncodings;
        const shift = (round - 1) % list.length;
        const order = [...list.slice(shift), ...list.slice(0, shift)];
        for (const encoding of order) {
          try {
            const result = await runRelay({
              encoding,
              events,
              rabbitUrl,
              producerSql,
              relaySql,
              reset: database.reset,
              rate: options.rate,
              durationMs: options.durationSeconds * 1000,
              warmUpMs: E2E_WARM_UP_MS,
              eventsPerTx: options.eventsPerTx,
              progress,
            });
            runs.push({ round, result });
            progress(
              `${encoding} run ${round}: ${Math.round(result.deliveredPerSecond)} delivered/s, p50 ${result.latency?.p50.toFixed(1)} ms, ` +
                `p99 ${result.latency?.p99.toFixed(1)} ms, ${result.distinct} of ${result.committed} received, ` +
                `${result.duplicates} duplicated${result.drainNote ? ` (${result.drainNote})` : ''}`,
            );
          } catch (error) {
            notes.push(`- ${encoding}, run ${round}: failed, ${(error as Error).message}`);
            progress(`${encoding} run ${round}: failed: ${(error as Error).stack ?? String(error)}`);
          }
        }
      }
    } finally {
      await Promise.all([producerSql, relaySql].map((sql: Sql) => sql.end({ timeout: 5 })));
    }
  }

  const loadAtEnd = os.loadavg();
  try {
    console.log(
      [
        heading(options, events.length, database, rabbitUrl, loadAtStart, loadAtEnd),
        '### Encode and decode, per event type',
        '',
        formatMicroTable(micro.results),
        '',
        '```',
        ...formatMicroRatios(micro.results),
        '```',
        '',
        "Catalogue figures (the libraries' published claims; nothing in this repository states any):",
        '',
        ...formatCatalogueSources(),
        '',
        roundTripNote(micro),
        ...(options.e2e
          ? [
              '',
              '### End to end: outbox, relay, RabbitMQ, a group subscription',
              '',
              formatE2eTable(runs),
              '',
              ...formatE2eVerdicts(runs),
              '',
              formatE2eDiagnostics(runs),
              '',
              '```',
              ...formatE2eRatios(runs),
              '```',
            ]
          : []),
        ...(notes.length > 0 ? ['', 'Notes:', '', ...notes] : []),
      ].join('\n'),
    );
  } finally {
    await database?.close();
  }
  progress(`done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

function roundTripNote(micro: MicroRun): string {
  return micro.mismatches.length === 0
    ? 'Round trip: every sample event decoded equal (deep equality) to the event encoded, in every encoding.'
    : [
        'Round trip: some events did not decode to the event encoded:',
        '',
        ...micro.mismatches.map((m) => `- ${m}`),
      ].join('\n');
}

function heading(
  options: CodecsBenchOptions,
  typeCount: number,
  database: CodecsDatabase | undefined,
  rabbitUrl: string,
  loadAtStart: number[],
  loadAtEnd: number[],
): string {
  const cpus = os.cpus();
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(' / ');
  return [
    '## Event encodings: JSON, MessagePack and Protocol Buffers',
    '',
    `date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GB RAM, Node ${process.version}` +
      (database ? `, PostgreSQL ${database.version} (${database.source}), RabbitMQ at ${redact(rabbitUrl)}` : '') +
      `; load average (1 / 5 / 15 min) ${load(loadAtStart)} at the start, ${load(loadAtEnd)} at the end`,
    '',
    `Micro: the codec as stratum builds it (createEventCodec over the ${typeCount} declared event types), ${EVENTS_PER_TYPE} sample events per type ` +
      '(UUID ids, ISO createdAt, a traceparent header, payloads shaped as the contexts publish them). Per event type and encoding: ' +
      `a ${WARM_UP_MS} ms warm-up, then ${options.rounds} samples of ${options.sampleMs} ms, one per round, a type's three encodings back to back ` +
      "in an order rotating each round, no forced GC between them (one made protobufjs's code 5-10x slower for a while after it). " +
      'A sample encodes the events one by one, then decodes those bodies, ' +
      'timed apart; encode+decode ops/s is one of each per operation. Figures are medians over the samples; body bytes are the mean ' +
      "body length over the type's samples. The overall ratios are the geometric mean of the per-type ratios.",
    ...(options.e2e
      ? [
          '',
          `End to end, per encoding: a producer writes ${options.rate.toLocaleString('en-US')} events/s into messaging.outbox (open model: a transaction of ` +
            `${options.eventsPerTx} events, one addAllToOutbox statement, due every ${options.eventsPerTx}/rate s; the declared types in turn, ` +
            `payloads as above) for ${options.durationSeconds} s after a ${E2E_WARM_UP_MS / 1000} s warm-up, the outbox starting each run with 20,000 rows already sent and analyzed (as a live outbox keeps them; see bench/codecs/database.ts); the real relay (createRelay, defaults, ` +
            'a pool of 2 connections of its own) publishes to createRabbitMqBroker({ codec }) in a namespace of its own (8 partitions, publisher confirms); ' +
            'one group subscription (broker.subscribe, no consume() transaction: the handler records the event and acknowledges) receives them. ' +
            'All in this one process. Latency runs from COMMIT returning to the producer to the handler getting the decoded event (nearest rank); ' +
            '"delivered" counts distinct ids of the timed run received inside the load window, per second of it; after a drain every committed ' +
            `id is looked for (lost) and deliveries beyond the first are counted (duplicated). ${options.e2eRounds} run(s) per encoding, ` +
            'the order rotating; the ratios compare the medians of the runs.',
        ]
      : []),
    '',
  ].join('\n');
}

/** A URL without its password, for the report. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
