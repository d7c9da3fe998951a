import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import type { EventType } from '../../src/platform/context/events.ts';
import type { OutboxEvent } from '../../src/platform/messaging/broker.ts';
import {
  createEventCodec,
  EVENT_ENCODINGS,
  type EncodedEvent,
  type EventCodec,
  type EventEncoding,
} from '../../src/platform/messaging/codec/event-codec.ts';
import { interleave } from '../support/schedule.ts';
import { median } from '../support/stats.ts';
import { sampleEvents } from './samples.ts';

export interface MicroOptions {
  events: readonly EventType[];
  /** Timed samples per event type and encoding (the rounds). */
  rounds: number;
  /** Length of one timed sample, ms. */
  sampleMs: number;
  /** Untimed run per event type and encoding before the rounds, ms. */
  warmUpMs: number;
  /** Distinct events per type that a sample cycles through. */
  eventsPerType: number;
  progress: (line: string) => void;
}

/** One event type in one encoding: medians over the rounds. */
export interface MicroResult {
  type: string;
  encoding: EventEncoding;
  /** Mean encoded body size over the type's sample events, bytes. */
  bytes: number;
  encodePerSecond: number;
  decodePerSecond: number;
  /** One encode and one decode per operation. */
  roundTripPerSecond: number;
  /** Every sample's encode+decode ops/s, in round order. */
  roundTripSamples: number[];
}

export interface MicroRun {
  results: MicroResult[];
  /** Events whose decode did not give back the event encoded, per encoding (the first few, described). */
  mismatches: string[];
}

interface Cell {
  type: string;
  encoding: EventEncoding;
  codec: EventCodec;
  events: OutboxEvent[];
  samples: number;
  encodeRates: number[];
  decodeRates: number[];
  roundTripRates: number[];
}

/**
 * Encode and decode throughput of the codec (createEventCodec over every declared type, as stratum builds it) for
 * each event type and encoding: a warm-up of each, then `rounds` rounds; inside a round each type's encodings run
 * one after another in an order that rotates from round to round. A sample encodes the type's events one by one,
 * then decodes those bodies, over and over for `sampleMs`; encode and decode are timed apart. No full GC is forced
 * between samples (support/gc.ts): right after one, protobufjs's encoders and decoders ran 5-10 times slower for a
 * while, which timed V8 warming up again rather than the codec; young-generation GCs fall inside the samples.
 */
export function runMicro(options: MicroOptions): MicroRun {
  const samples = sampleEvents(options.events, options.eventsPerType);
  const codecs = new Map(
    EVENT_ENCODINGS.map((encoding) => [encoding, createEventCodec({ encoding, events: options.events })] as const),
  );
  const mismatches: string[] = [];
  const cells: Cell[] = [];
  for (const type of options.events) {
    for (const encoding of EVENT_ENCODINGS) {
      const codec = codecs.get(encoding)!;
      const events = samples.get(type.name)!;
      for (const event of events) {
        const { body, contentType } = codec.encode(event);
        const back = codec.decode(body, contentType);
        if (!isDeepStrictEqual(back, event) && mismatches.length < 20)
          mismatches.push(
            `${encoding} ${type.name}: wrote ${JSON.stringify(event.payload)}, read ${JSON.stringify(back.payload)}` +
              (isDeepStrictEqual(back.payload, event.payload) ? ' (the envelope differs)' : ''),
          );
      }
      cells.push({
        type: type.name,
        encoding,
        codec,
        events,
        samples: options.rounds,
        encodeRates: [],
        decodeRates: [],
        roundTripRates: [],
      });
    }
  }

  options.progress(`micro: warm-up, ${options.warmUpMs} ms per event type and encoding`);
  for (const cell of cells) measure(cell, options.warmUpMs);

  // One schedule per event type, so each round runs a type's three encodings back to back, rotating their order.
  const byType = options.events.map((t) => interleave(cells.filter((c) => c.type === t.name)));
  for (let round = 0; round < options.rounds; round++) {
    for (const schedule of byType) {
      for (const cell of schedule[round] ?? []) {
        const m = measure(cell, options.sampleMs);
        cell.encodeRates.push(m.encodePerSecond);
        cell.decodeRates.push(m.decodePerSecond);
        cell.roundTripRates.push(m.roundTripPerSecond);
      }
    }
    options.progress(`micro: round ${round + 1}/${options.rounds}`);
  }

  return {
    mismatches,
    results: cells.map((cell) => ({
      type: cell.type,
      encoding: cell.encoding,
      bytes: cell.events.reduce((sum, e) => sum + cell.codec.encode(e).body.length, 0) / cell.events.length,
      encodePerSecond: median(cell.encodeRates),
      decodePerSecond: median(cell.decodeRates),
      roundTripPerSecond: median(cell.roundTripRates),
      roundTripSamples: cell.roundTripRates,
    })),
  };
}

/** Keeps what decode returns reachable, so the work cannot be skipped. */
let sink = 0;

function measure(
  cell: Cell,
  durationMs: number,
): { encodePerSecond: number; decodePerSecond: number; roundTripPerSecond: number } {
  const { codec, events } = cell;
  const encoded: EncodedEvent[] = new Array<EncodedEvent>(events.length);
  let encodeMs = 0;
  let decodeMs = 0;
  let ops = 0;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    const t0 = performance.now();
    for (let i = 0; i < events.length; i++) encoded[i] = codec.encode(events[i]!);
    const t1 = performance.now();
    for (let i = 0; i < events.length; i++) {
      const e = encoded[i]!;
      sink += codec.decode(e.body, e.contentType).id.length;
    }
    const t2 = performance.now();
    encodeMs += t1 - t0;
    decodeMs += t2 - t1;
    ops += events.length;
  }
  if (sink < 0) throw new Error('unreachable');
  return {
    encodePerSecond: (1000 * ops) / encodeMs,
    decodePerSecond: (1000 * ops) / decodeMs,
    roundTripPerSecond: (1000 * ops) / (encodeMs + decodeMs),
  };
}
