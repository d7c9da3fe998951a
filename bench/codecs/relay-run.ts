import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventType } from '../../src/platform/context/events.ts';
import type { Sql } from '../../src/platform/db/connect.ts';
import type { Broker, Delivery, Outcome, Subscription } from '../../src/platform/messaging/broker.ts';
import {
  createEventCodec,
  type EventCodec,
  type EventEncoding,
} from '../../src/platform/messaging/codec/event-codec.ts';
import type { NewEvent } from '../../src/platform/messaging/outbox.ts';
import { createRelay, type Relay } from '../../src/platform/messaging/relay.ts';
import { cpuBetween, sampleCpu } from '../support/cpu-time.ts';
import { percentile } from '../support/stats.ts';
import { produce } from './producer.ts';
import { sampleNewEvent } from './samples.ts';

export interface RelayRunOptions {
  encoding: EventEncoding;
  events: readonly EventType[];
  rabbitUrl: string;
  producerSql: Sql;
  relaySql: Sql;
  reset: (sql: Sql) => Promise<void>;
  rate: number;
  durationMs: number;
  warmUpMs: number;
  eventsPerTx: number;
  progress: (line: string) => void;
}

export interface Quantiles {
  p50: number;
  p99: number;
  max: number;
}

export interface RelayRunResult {
  encoding: EventEncoding;
  rate: number;
  committed: number;
  committedPerSecond: number;
  transactions: number;
  shed: number;
  producerErrors: number;
  /** Distinct events of the timed run the consumer received inside the load window, per second of it. */
  deliveredPerSecond: number;
  /** Distinct events of the timed run received, and deliveries beyond the first of one. */
  distinct: number;
  duplicates: number;
  /** Committed, never received. */
  lost: number;
  /** Received, but no transaction of this broker's runs reported its id committed. */
  unexpected: number;
  /** COMMIT returned → the consumer's handler got the decoded event, ms, over every event received. */
  latency: Quantiles | undefined;
  /** Received before the producer saw its COMMIT return; counted as 0 ms. */
  beforeCommitReturned: number;
  commitLag: { p50: number; p99: number };
  /** The relay's batches in the timed run: how many, their mean size and the largest (its batchSize is 500). */
  relay: { batches: number; meanEvents: number; largest: number };
  /** Through the codec during the timed run and its drain, per event. */
  wire: { bodyBytes: number; encodeUs: number; decodeUs: number };
  /** The load window: this process in % of one core, RabbitMQ's server (when found here) likewise, the machine in % of all cores. */
  cpu: { self: number; rabbitmq: number | undefined; machine: number };
  eventLoopDelayP99: number;
  /** Set when the drain stopped before every committed event had arrived. */
  drainNote?: string;
}

const GROUP = 'bench';
/** Distinct events the producer cycles through (write order: the declared types in turn). */
const EVENT_POOL = 2000;
const DRAIN_STALL_MS = 5000;
const DRAIN_CAP_MS = 30_000;

/**
 * One encoding end to end: a RabbitMQ broker in a namespace of its own with `createRabbitMqBroker({ codec })`, a
 * group subscription (`broker.subscribe`, acknowledging each event once it is recorded), the real relay on its
 * own pool, then an untimed warm-up and one timed run of the producer, each drained. The namespace is deleted
 * after.
 */
export async function runRelay(options: RelayRunOptions): Promise<RelayRunResult> {
  const { encoding, progress } = options;
  const warnings = new Map<string, number>();
  const log = (message: string, error?: unknown) => {
    const line = error instanceof Error ? `${message}: ${error.message}` : message;
    if (!warnings.has(line)) progress(`${encoding}: ${line}`);
    warnings.set(line, (warnings.get(line) ?? 0) + 1);
  };
  const counting = countingCodec(createEventCodec({ encoding, events: options.events }));
  const pool: NewEvent[] = Array.from({ length: EVENT_POOL }, (_, n) =>
    sampleNewEvent(options.events[n % options.events.length]!.name, Math.floor(n / options.events.length)),
  );
  const namespace = `bench-codecs-${randomUUID().slice(0, 8)}`;
  const receivedAt = new Map<string, number>();
  const deliveries = new Map<string, number>();
  const record = (d: Delivery, at: number) => {
    if (!receivedAt.has(d.event.id)) receivedAt.set(d.event.id, at);
    deliveries.set(d.event.id, (deliveries.get(d.event.id) ?? 0) + 1);
  };
  let relayBatches = 0;
  let relayEvents = 0;
  let relayLargest = 0;

  await options.reset(options.relaySql);
  const { createRabbitMqBroker } = await import('../../src/platform/messaging/rabbitmq/index.ts');
  let broker: Broker | undefined;
  let subscription: Subscription | undefined;
  let relay: Relay | undefined;
  try {
    broker = await createRabbitMqBroker({
      url: options.rabbitUrl,
      namespace,
      groups: [GROUP],
      codec: counting.codec,
      log,
    });
    const ack: Outcome = { kind: 'ack' };
    subscription = await broker.subscribe(GROUP, {
      async handle(delivery) {
        record(delivery, performance.now());
        return ack;
      },
      async handleBatch(batch) {
        const at = performance.now();
        for (const d of batch) record(d, at);
        return batch.map(() => ack);
      },
    });
    relay = createRelay({
      sql: options.relaySql,
      broker,
      log,
      onSent: (count) => {
        relayBatches++;
        relayEvents += count;
        relayLargest = Math.max(relayLargest, count);
      },
    });
    await relay.start();

    progress(`${encoding}: warm-up, ${options.warmUpMs / 1000} s at ${options.rate} events/s (namespace ${namespace})`);
    const warmUp = await produce({
      sql: options.producerSql,
      rate: options.rate,
      eventsPerTx: options.eventsPerTx,
      durationMs: options.warmUpMs,
      events: pool,
      log,
    });
    await drain(warmUp.committedAt, receivedAt);

    progress(`${encoding}: ${options.rate} events/s for ${options.durationMs / 1000} s`);
    counting.reset();
    relayBatches = 0;
    relayEvents = 0;
    relayLargest = 0;
    const rabbitPid =
      options.rabbitUrl.includes('127.0.0.1') || options.rabbitUrl.includes('localhost') ? findBeam() : undefined;
    const cpuBefore = sampleCpu(rabbitPid ?? process.pid);
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const windowStart = performance.now();
    const timed = await produce({
      sql: options.producerSql,
      rate: options.rate,
      eventsPerTx: options.eventsPerTx,
      durationMs: options.durationMs,
      events: pool,
      log,
    });
    const windowEnd = windowStart + options.durationMs;
    const cpu = cpuBetween(cpuBefore, sampleCpu(rabbitPid ?? process.pid));
    loopDelay.disable();
    const drainNote = await drain(timed.committedAt, receivedAt);

    const latencies: number[] = [];
    let distinct = 0;
    let inWindow = 0;
    let duplicates = 0;
    let beforeCommitReturned = 0;
    for (const [id, committedAt] of timed.committedAt) {
      const at = receivedAt.get(id);
      if (at === undefined) continue;
      distinct++;
      if (at <= windowEnd) inWindow++;
      duplicates += (deliveries.get(id) ?? 1) - 1;
      if (at < committedAt) beforeCommitReturned++;
      latencies.push(Math.max(0, at - committedAt));
    }
    let unexpected = 0;
    for (const id of receivedAt.keys()) if (!timed.committedAt.has(id) && !warmUp.committedAt.has(id)) unexpected++;
    const codecCounts = counting.counts();
    const seconds = options.durationMs / 1000;
    return {
      encoding,
      rate: options.rate,
      committed: timed.committedAt.size,
      committedPerSecond: timed.committedAt.size / seconds,
      transactions: timed.transactions,
      shed: timed.shed,
      producerErrors: timed.errors,
      deliveredPerSecond: inWindow / seconds,
      distinct,
      duplicates,
      lost: timed.committedAt.size - distinct,
      unexpected,
      latency:
        latencies.length === 0
          ? undefined
          : { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies) },
      beforeCommitReturned,
      commitLag: {
        p50: timed.commitLagMs.length ? percentile(timed.commitLagMs, 50) : 0,
        p99: timed.commitLagMs.length ? percentile(timed.commitLagMs, 99) : 0,
      },
      relay: {
        batches: relayBatches,
        meanEvents: relayBatches ? relayEvents / relayBatches : 0,
        largest: relayLargest,
      },
      wire: {
        bodyBytes: codecCounts.encoded ? codecCounts.bytes / codecCounts.encoded : 0,
        encodeUs: codecCounts.encoded ? (1000 * codecCounts.encodeMs) / codecCounts.encoded : 0,
        decodeUs: codecCounts.decoded ? (1000 * codecCounts.decodeMs) / codecCounts.decoded : 0,
      },
      cpu: { self: cpu.self, rabbitmq: rabbitPid === undefined ? undefined : cpu.other, machine: cpu.machine },
      eventLoopDelayP99: loopDelay.percentile(99) / 1e6,
      ...(drainNote ? { drainNote } : {}),
    };
  } finally {
    await relay?.stop().catch((e: unknown) => log('stopping the relay', e));
    await subscription?.stop().catch((e: unknown) => log('stopping the subscription', e));
    await broker?.close().catch((e: unknown) => log('closing the broker', e));
    await deleteRabbitNamespace(options.rabbitUrl, namespace, broker?.partitions ?? 8).catch((e: unknown) =>
      log(`deleting namespace ${namespace}`, e),
    );
    for (const [warning, count] of warnings) if (count > 1) progress(`${encoding}: logged ${count} times: ${warning}`);
  }
}

/** Waits until every committed event has arrived, no new one has for DRAIN_STALL_MS, or DRAIN_CAP_MS passed. */
async function drain(committed: Map<string, number>, received: Map<string, number>): Promise<string | undefined> {
  const started = performance.now();
  const missing = () => {
    let n = 0;
    for (const id of committed.keys()) if (!received.has(id)) n++;
    return n;
  };
  let left = missing();
  let progressAt = started;
  while (left > 0) {
    await sleep(100);
    const now = performance.now();
    const still = missing();
    if (still < left) progressAt = now;
    left = still;
    if (left === 0) break;
    if (now - progressAt > DRAIN_STALL_MS)
      return `${left} events not received, none arriving for ${DRAIN_STALL_MS / 1000} s`;
    if (now - started > DRAIN_CAP_MS)
      return `${left} events still not received after ${DRAIN_CAP_MS / 1000} s of drain`;
  }
  // Deliveries beyond the first (redeliveries) would come right after; give them a moment.
  await sleep(300);
  return undefined;
}

/** The codec, counting what it encodes and decodes and the time it takes. */
function countingCodec(inner: EventCodec) {
  let encoded = 0;
  let bytes = 0;
  let encodeMs = 0;
  let decoded = 0;
  let decodeMs = 0;
  const codec: EventCodec = {
    encoding: inner.encoding,
    encode(event) {
      const t = performance.now();
      const out = inner.encode(event);
      encodeMs += performance.now() - t;
      encoded++;
      bytes += out.body.length;
      return out;
    },
    encodeMany(events) {
      const t = performance.now();
      const out = inner.encodeMany(events);
      encodeMs += performance.now() - t;
      encoded += events.length;
      bytes += out.body.length;
      return out;
    },
    decode(body, contentType) {
      const t = performance.now();
      const out = inner.decode(body, contentType);
      decodeMs += performance.now() - t;
      decoded++;
      return out;
    },
    decodeMany(body, contentType) {
      const t = performance.now();
      const out = inner.decodeMany(body, contentType);
      decodeMs += performance.now() - t;
      decoded += out.length;
      return out;
    },
  };
  return {
    codec,
    reset() {
      encoded = bytes = encodeMs = decoded = decodeMs = 0;
    },
    counts: () => ({ encoded, bytes, encodeMs, decoded, decodeMs }),
  };
}

/** RabbitMQ's Erlang VM on this machine, by the command name /proc gives it; undefined when not found. */
function findBeam(): number | undefined {
  try {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'beam.smp') return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return undefined;
}

async function deleteRabbitNamespace(url: string, namespace: string, partitions: number): Promise<void> {
  const [{ deleteNamespace, rabbitNames }, { default: amqp }] = await Promise.all([
    import('../../src/platform/messaging/rabbitmq/index.ts'),
    import('amqplib'),
  ]);
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    await deleteNamespace(channel, rabbitNames(namespace), [GROUP], partitions);
  } finally {
    await connection.close();
  }
}
