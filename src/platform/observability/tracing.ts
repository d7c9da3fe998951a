import { context, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type Span as SdkSpan,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

export { SpanKind } from '@opentelemetry/api';
export type { Span } from '@opentelemetry/api';

/** One finished span as the trace pages and `/admin/traces/:id/spans` show it: epoch milliseconds, no HrTime. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: 'internal' | 'server' | 'client' | 'producer' | 'consumer';
  service: string;
  instance: string | undefined;
  startMs: number;
  durationMs: number;
  status: 'ok' | 'error' | 'unset';
  statusMessage?: string;
  attributes: Record<string, string | number | boolean>;
  events: Array<{ name: string; atMs: number; attributes: Record<string, string | number | boolean> }>;
}

/** A trace this process holds spans of: its earliest span (the root when the root is here), counts, its time. */
export interface TraceSummary {
  traceId: string;
  name: string;
  service: string;
  startMs: number;
  durationMs: number;
  spans: number;
  errors: number;
}

/** The last traces of this process, in memory: what `/admin/traces` shows. */
export interface TraceStore {
  /** Newest first. */
  recent(limit?: number): TraceSummary[];
  /** Every span of the trace this process holds, in start order; empty when it holds none. */
  spans(traceId: string): SpanRecord[];
}

export interface TracingOptions {
  /** `service.name` of every span (`stratum`, `stratum-quotes`). */
  serviceName: string;
  /** `service.instance.id` (INSTANCE_NAME). */
  instance?: string;
  /** OTEL_EXPORTER_OTLP_ENDPOINT: spans are also exported there by OTLP/HTTP (JSON), at `<endpoint>/v1/traces`. */
  otlpEndpoint?: string;
  /** OTEL_SDK_DISABLED: no spans at all; the API stays a no-op. */
  disabled?: boolean;
  /** Traces kept in memory (default 200), each with at most `spansPerTrace` spans (default 500). */
  keepTraces?: number;
  spansPerTrace?: number;
}

export interface Tracing {
  /** Undefined when tracing is off. */
  readonly store: TraceStore | undefined;
  /** Sends what is still buffered to the exporter. */
  flush(): Promise<void>;
}

const TRACER = 'stratum';
let started: Tracing | undefined;

/**
 * Starts tracing for this process (once: a later call gets the first one's): W3C trace context on every
 * service-to-service call and outbox event, spans kept in memory for `/admin/traces` and, with an endpoint,
 * exported by OTLP/HTTP. Off (OTEL_SDK_DISABLED), the OpenTelemetry API stays a no-op and every span helper
 * below costs next to nothing.
 * @example const tracing = startTracing({ serviceName: 'stratum-quotes', instance: 'quotes-1' });
 */
export function startTracing(options: TracingOptions): Tracing {
  if (started) return started;
  if (options.disabled) {
    started = { store: undefined, flush: async () => {} };
    return started;
  }
  const store = new MemoryStore(
    options.keepTraces ?? 200,
    options.spansPerTrace ?? 500,
    options.serviceName,
    options.instance,
  );
  const processors: SpanProcessor[] = [store];
  if (options.otlpEndpoint) {
    const url = `${options.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 500 }));
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.serviceName,
      ...(options.instance ? { 'service.instance.id': options.instance } : {}),
    }),
    spanProcessors: processors,
  });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  started = { store, flush: () => provider.forceFlush() };
  return started;
}

function tracer() {
  return trace.getTracer(TRACER);
}

/**
 * Runs `fn` in a new span, the current one its parent (or the trace context of `parentHeaders`), and ends it when `fn` settles: an error is recorded on it
 * (and rethrown). `fn` gets the span to add attributes and events.
 * @example await inSpan('transaction app.rename', { kind: SpanKind.INTERNAL }, (span) => work());
 */
export function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parentHeaders?: Record<string, unknown> },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const { span, run } = beginSpan(name, options);
  return run(() => fn(span)).then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      failSpan(span, error);
      span.end();
      throw error;
    },
  );
}

/** Marks a span failed with the error's name and message (never its details: they may hold values). */
export function failSpan(span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: typeof code === 'string' ? code : error instanceof Error ? error.name : 'error',
  });
  if (error instanceof Error) span.recordException({ name: error.name, message: error.message });
}

/** A span begun now (under `parent` headers' trace context when given, else the current one), ended by the caller. */
export function beginSpan(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parentHeaders?: Record<string, unknown> },
): { span: Span; run: <T>(fn: () => T) => T } {
  const parent = options.parentHeaders
    ? propagation.extract(context.active(), options.parentHeaders)
    : context.active();
  const span = tracer().startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes },
    parent,
  );
  const active = trace.setSpan(parent, span);
  return { span, run: (fn) => context.with(active, fn) };
}

/**
 * Adds the current trace context (`traceparent`, `tracestate`) to `headers` and returns them: what an outgoing
 * call or an outbox event carries so the other side continues the trace.
 */
export function withTraceHeaders<H extends Record<string, string>>(headers: H): H {
  propagation.inject(context.active(), headers);
  return headers;
}

/** Whether a span is being recorded now (tracing on, inside a sampled trace). */
export function tracingActive(): boolean {
  return trace.getActiveSpan()?.isRecording() ?? false;
}

const KIND_NAMES: Record<SpanKind, SpanRecord['kind']> = {
  [SpanKind.INTERNAL]: 'internal',
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.PRODUCER]: 'producer',
  [SpanKind.CONSUMER]: 'consumer',
};

const ms = (time: [number, number]) => time[0] * 1000 + time[1] / 1e6;

function flat(attributes: Attributes): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = value;
    else if (Array.isArray(value)) out[key] = value.join(',');
  }
  return out;
}

/** The in-memory span store: the last `keep` traces by first span seen, oldest dropped first. */
class MemoryStore implements SpanProcessor, TraceStore {
  // The SDK's own span objects, turned into records only when a page asks: keeping one costs a push.
  private readonly traces = new Map<string, ReadableSpan[]>();

  constructor(
    private readonly keep: number,
    private readonly perTrace: number,
    private readonly service: string,
    private readonly instance: string | undefined,
  ) {}

  onStart(_span: SdkSpan): void {}

  onEnd(span: ReadableSpan): void {
    const { traceId } = span.spanContext();
    let spans = this.traces.get(traceId);
    if (!spans) {
      spans = [];
      this.traces.set(traceId, spans);
      if (this.traces.size > this.keep) this.traces.delete(this.traces.keys().next().value!);
    }
    if (spans.length < this.perTrace) spans.push(span);
  }

  private record(span: ReadableSpan): SpanRecord {
    const { traceId, spanId } = span.spanContext();
    return {
      traceId,
      spanId,
      parentSpanId: span.parentSpanContext?.spanId,
      name: span.name,
      kind: KIND_NAMES[span.kind],
      service: this.service,
      instance: this.instance,
      startMs: ms(span.startTime),
      durationMs: ms(span.duration),
      status:
        span.status.code === SpanStatusCode.ERROR ? 'error' : span.status.code === SpanStatusCode.OK ? 'ok' : 'unset',
      ...(span.status.message ? { statusMessage: span.status.message } : {}),
      attributes: flat(span.attributes),
      events: span.events.map((e) => ({ name: e.name, atMs: ms(e.time), attributes: flat(e.attributes ?? {}) })),
    };
  }

  recent(limit = 50): TraceSummary[] {
    const out: TraceSummary[] = [];
    for (const [traceId, kept] of [...this.traces].reverse()) {
      if (out.length >= limit) break;
      if (kept.length === 0) continue;
      const spans = kept.map((s) => this.record(s));
      // The span whose parent is not here (start times tie at a millisecond): the request that came in.
      const ids = new Set(spans.map((s) => s.spanId));
      const roots = spans.filter((s) => s.parentSpanId === undefined || !ids.has(s.parentSpanId));
      const first = (roots.length > 0 ? roots : spans).reduce((a, b) => (b.startMs < a.startMs ? b : a));
      const end = Math.max(...spans.map((s) => s.startMs + s.durationMs));
      out.push({
        traceId,
        name: first.name,
        service: first.service,
        startMs: first.startMs,
        durationMs: end - first.startMs,
        spans: spans.length,
        errors: spans.filter((s) => s.status === 'error').length,
      });
    }
    return out;
  }

  spans(traceId: string): SpanRecord[] {
    return (this.traces.get(traceId) ?? []).map((s) => this.record(s)).sort((a, b) => a.startMs - b.startMs);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
