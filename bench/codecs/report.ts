import type { EventEncoding } from '../../src/platform/messaging/codec/event-codec.ts';
import { median } from '../support/stats.ts';
import { CATALOGUE } from './catalogue.ts';
import type { MicroResult } from './micro.ts';
import type { RelayRunResult } from './relay-run.ts';

/** The share of the offered rate that must arrive inside the load window for a run to count as sustained. */
const SUSTAINED = 0.95;

const int = (v: number) => Math.round(v).toLocaleString('en-US');
const ms = (v: number | undefined) =>
  v === undefined ? 'n/a' : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
const ratio = (v: number) => `${v.toFixed(2)}x`;
const geometricMean = (values: readonly number[]) =>
  Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);

type Others = Exclude<EventEncoding, 'json'>;
const OTHERS: readonly Others[] = ['msgpack', 'protobuf'];

function find(results: readonly MicroResult[], type: string, encoding: EventEncoding): MicroResult {
  return results.find((r) => r.type === type && r.encoding === encoding)!;
}

/** One row per event type and encoding, JSON first, with the ratios to JSON of the same type. */
export function formatMicroTable(results: readonly MicroResult[]): string {
  const rows = results.map((r) => {
    const json = find(results, r.type, 'json');
    return (
      `| ${r.type} | ${r.encoding} | ${r.bytes.toFixed(1)} | ${int(r.encodePerSecond)} | ${int(r.decodePerSecond)} ` +
      `| ${int(r.roundTripPerSecond)} | ${ratio(r.roundTripPerSecond / json.roundTripPerSecond)} | ${ratio(r.bytes / json.bytes)} |`
    );
  });
  return [
    '| event type | encoding | body bytes (mean) | encode ops/s | decode ops/s | encode+decode ops/s | encode+decode vs json | size vs json |',
    '|---|---|--:|--:|--:|--:|--:|--:|',
    ...rows,
  ].join('\n');
}

/**
 * `ratio <enc>/json encode+decode throughput` and `... size`, per event type and over all of them (the geometric
 * mean of the per-type ratios), each with the catalogue's figure.
 */
export function formatMicroRatios(results: readonly MicroResult[]): string[] {
  const types = [...new Set(results.map((r) => r.type))];
  const lines: string[] = [];
  for (const encoding of OTHERS) {
    const catalogue = CATALOGUE[encoding];
    const throughput = types.map(
      (t) => find(results, t, encoding).roundTripPerSecond / find(results, t, 'json').roundTripPerSecond,
    );
    const size = types.map((t) => find(results, t, encoding).bytes / find(results, t, 'json').bytes);
    lines.push(
      `ratio ${encoding}/json encode+decode throughput: ${ratio(geometricMean(throughput))} (catalogue: ${ratio(catalogue.throughput.ratio)})`,
      `ratio ${encoding}/json size: ${ratio(geometricMean(size))} (catalogue: ${ratio(catalogue.size.ratio)})`,
    );
    types.forEach((t, i) =>
      lines.push(
        `ratio ${encoding}/json encode+decode throughput, ${t}: ${ratio(throughput[i]!)} (catalogue: ${ratio(catalogue.throughput.ratio)})`,
      ),
    );
    types.forEach((t, i) =>
      lines.push(`ratio ${encoding}/json size, ${t}: ${ratio(size[i]!)} (catalogue: ${ratio(catalogue.size.ratio)})`),
    );
  }
  return lines;
}

/** Where each catalogue figure comes from. */
export function formatCatalogueSources(): string[] {
  return OTHERS.flatMap((encoding) => [
    `- ${encoding} throughput ${ratio(CATALOGUE[encoding].throughput.ratio)}: ${CATALOGUE[encoding].throughput.source}`,
    `- ${encoding} size ${ratio(CATALOGUE[encoding].size.ratio)}: ${CATALOGUE[encoding].size.source}`,
  ]);
}

export interface E2eRun {
  round: number;
  result: RelayRunResult;
}

export function formatE2eTable(runs: readonly E2eRun[]): string {
  const rows = runs.map(({ round, result: r }) => {
    const dup = r.duplicates + r.unexpected > 0 ? `${int(r.duplicates)} (+${int(r.unexpected)} unknown ids)` : '0';
    return (
      `| ${r.encoding} | ${round} | ${int(r.rate)} | ${int(r.committedPerSecond)} | ${int(r.deliveredPerSecond)} ` +
      `| ${ms(r.latency?.p50)} | ${ms(r.latency?.p99)} | ${ms(r.latency?.max)} | ${int(r.distinct)} of ${int(r.committed)} ` +
      `| ${int(r.lost)} | ${dup} | ${r.wire.bodyBytes.toFixed(1)} |`
    );
  });
  return [
    '| encoding | run | offered events/s | committed events/s | delivered events/s | p50 ms | p99 ms | max ms | distinct ids received | lost | duplicated | body bytes per event |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows,
  ].join('\n');
}

export function formatE2eDiagnostics(runs: readonly E2eRun[]): string {
  const rows = runs.map(({ round, result: r }) => {
    const rabbit = r.cpu.rabbitmq === undefined ? 'n/a' : `${Math.round(r.cpu.rabbitmq)}%`;
    return (
      `| ${r.encoding} | ${round} | ${int(r.transactions)} | ${int(r.shed)} | ${int(r.producerErrors)} | ${ms(r.commitLag.p50)} / ${ms(r.commitLag.p99)} ` +
      `| ${int(r.relay.batches)} × ${r.relay.meanEvents.toFixed(1)} (${int(r.relay.largest)}) | ${r.wire.encodeUs.toFixed(1)} | ${r.wire.decodeUs.toFixed(1)} ` +
      `| ${int(r.beforeCommitReturned)} | ${Math.round(r.cpu.self)}% | ${rabbit} | ${Math.round(r.cpu.machine)}% | ${ms(r.eventLoopDelayP99)} |`
    );
  });
  return [
    '| encoding | run | transactions | shed | producer errors | commit lag p50 / p99 ms | relay publishes × mean events (largest) | encode µs per event | decode µs per event | received before COMMIT returned | CPU, bench process (of one core) | CPU, RabbitMQ (of one core) | CPU, machine | event-loop delay p99 ms |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows,
  ].join('\n');
}

/** Per run: whether the offered rate was sustained, else the rate reached; and whether anything was lost. */
export function formatE2eVerdicts(runs: readonly E2eRun[]): string[] {
  return runs.map(({ round, result: r }) => {
    const sustained = r.deliveredPerSecond >= SUSTAINED * r.rate && r.committedPerSecond >= SUSTAINED * r.rate;
    const rate = sustained
      ? `${int(r.rate)} events/s sustained (${int(r.committedPerSecond)} committed/s, ${int(r.deliveredPerSecond)} delivered/s in the window)`
      : `${int(r.rate)} events/s NOT sustained: reached ${int(Math.min(r.committedPerSecond, r.deliveredPerSecond))} events/s ` +
        `(${int(r.committedPerSecond)} committed/s, ${int(r.deliveredPerSecond)} delivered/s in the window)`;
    const integrity =
      r.lost === 0 && r.duplicates === 0 && r.unexpected === 0
        ? 'every committed event received exactly once'
        : `${int(r.lost)} lost, ${int(r.duplicates)} duplicated, ${int(r.unexpected)} unknown ids`;
    return `- ${r.encoding}, run ${round}: ${rate}; ${integrity}${r.drainNote ? ` (${r.drainNote})` : ''}`;
  });
}

/** `ratio <enc>/json relay p99` and the rest, each encoding's runs reduced to their median. */
export function formatE2eRatios(runs: readonly E2eRun[]): string[] {
  const of = (encoding: EventEncoding, pick: (r: RelayRunResult) => number | undefined) => {
    const values = runs
      .filter((r) => r.result.encoding === encoding)
      .map((r) => pick(r.result))
      .filter((v): v is number => v !== undefined);
    return values.length ? median(values) : undefined;
  };
  const line = (encoding: Others, what: string, pick: (r: RelayRunResult) => number | undefined) => {
    const [a, b] = [of(encoding, pick), of('json', pick)];
    return `ratio ${encoding}/json ${what}: ${a === undefined || b === undefined || b === 0 ? 'n/a' : ratio(a / b)}`;
  };
  return OTHERS.flatMap((encoding) => [
    line(encoding, 'relay p99', (r) => r.latency?.p99),
    line(encoding, 'relay p50', (r) => r.latency?.p50),
    line(encoding, 'relay delivered throughput', (r) => r.deliveredPerSecond),
    line(encoding, 'relay body bytes per event', (r) => r.wire.bodyBytes),
    line(encoding, 'relay encode+decode µs per event', (r) => r.wire.encodeUs + r.wire.decodeUs),
  ]);
}
