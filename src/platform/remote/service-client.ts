import { isBrokenCircuitError } from 'cockatiel';
import { currentDeadline } from '../db/deadline-scope.ts';
import { AppError, isAppError } from '../errors/app-error.ts';
import { inSpan, SpanKind, tracingActive, withTraceHeaders, type Span } from '../observability/tracing.ts';
import { AttemptFailure, describeFailure, sendAttempt } from './attempt.ts';
import { createInstanceSet, type Instance, type InstanceState } from './instance-set.ts';

export { DEADLINE_HEADER } from './attempt.ts';
export type { InstanceState } from './instance-set.ts';

export interface ServiceClientOptions {
  /** The dependency, as errors, logs and metrics name it (`quotes`). */
  name: string;
  /** Base URLs of its instances (`http://127.0.0.1:8101`), origins only; at least one. */
  urls: readonly string[];
  /** Longest wait for one attempt, connecting included (default 1000 ms); never past the call's deadline. */
  attemptTimeoutMs?: number;
  /** Attempts of one call, the first included (default 3). */
  attempts?: number;
  /** Wait before another attempt after a failure that may have reached the instance (default 100 ms). */
  backoffMs?: number;
  /** Consecutive failures that open an instance's breaker and take it out of rotation (default 3). */
  breakerThreshold?: number;
  /** How long an open breaker waits before a health check may try the instance again (default 1000 ms). */
  halfOpenAfterMs?: number;
  /** How often every instance is checked (default 500 ms). */
  healthIntervalMs?: number;
  /** Longest wait for one health check (default 250 ms). */
  healthTimeoutMs?: number;
  /** Default `/healthz`; any 2xx answer is healthy. */
  healthPath?: string;
  /** Keep-alive connections per instance (default 8). */
  connections?: number;
  /** Told when an instance leaves or rejoins the rotation (a log line, a metric); must not throw. */
  onInstanceChange?: (url: string, inRotation: boolean) => void;
  /** The clock of deadlines, epoch milliseconds like `currentDeadline()` (default `Date.now`). */
  now?: () => number;
}

export interface ServiceCall {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** Sent as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** May it be sent again after a failure that may have reached an instance? Default: GET and HEAD only. */
  idempotent?: boolean;
  /** The caller gives up: the attempt in flight is aborted and the call rejects with `REQUEST.ABORTED`. */
  signal?: AbortSignal;
  /** A budget of this call's own; the earlier of it and the caller's deadline (`currentDeadline()`) bounds it. */
  deadlineMs?: number;
}

export interface ServiceAnswer<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON when the answer says JSON, else the text. */
  body: T;
  /** The base URL of the instance that answered. */
  instance: string;
  /** Attempts it took, this one included. */
  attempts: number;
}

export interface ServiceClient {
  readonly name: string;
  /**
   * One call: any answer but 502/503/504 resolves (4xx included); a failure rejects with `DEPENDENCY.UNAVAILABLE`
   * whose details say `dependency`, `reason` and `attempts` and whose cause is the last attempt's failure.
   */
  request<T = unknown>(call: ServiceCall): Promise<ServiceAnswer<T>>;
  /** Each instance: in rotation or not, its breaker, calls in flight, its last failure. */
  state(): InstanceState[];
  /** Stops the health checks and closes every pool once the calls in flight have ended. */
  close(): Promise<void>;
}

/** Why a call failed: no instance in rotation, no time left before its deadline, or its attempts failed. */
export type UnavailableReason = 'no-instance' | 'deadline' | 'failed';

/** What a `DEPENDENCY.UNAVAILABLE` error of a service client carries in its `details`. */
export interface UnavailableDetails {
  dependency: string;
  reason: UnavailableReason;
  attempts: number;
}

/**
 * True when `error` is a service client's `DEPENDENCY.UNAVAILABLE`; its details then say which, why, how often.
 * @example if (isDependencyUnavailable(error) && error.details.reason === 'no-instance') return degraded();
 */
export function isDependencyUnavailable(error: unknown): error is AppError & { details: UnavailableDetails } {
  return isAppError(error, 'DEPENDENCY.UNAVAILABLE') && typeof error.details?.dependency === 'string';
}

/**
 * The one client of service-to-service calls, for one dependency with several instances: a keep-alive undici
 * pool and a circuit breaker per instance, least-outstanding balancing over the instances in rotation,
 * background health checks that take a dead instance out and put a recovered one back, retries (a refused
 * connection at once on another instance, other transient failures after `backoffMs` and only for idempotent
 * calls), and every call bounded by the caller's deadline, whose remainder travels in `x-stratum-deadline-ms`.
 * See docs/decisions/0029-service-client.md.
 * @example const quotes = createServiceClient({ name: 'quotes', urls: ['http://127.0.0.1:8101', 'http://127.0.0.1:8102'] });
 *          const { body } = await quotes.request<{ text: string }>({ path: '/quotes/random' });
 */
export function createServiceClient(options: ServiceClientOptions): ServiceClient {
  const { name } = options;
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('service client: name is required');
  const urls = validateUrls(name, options.urls);
  const now = options.now ?? Date.now;
  const attemptTimeoutMs = positive(name, 'attemptTimeoutMs', options.attemptTimeoutMs ?? 1000);
  const maxAttempts = count(name, 'attempts', options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 100;
  if (!Number.isFinite(backoffMs) || backoffMs < 0) throw new TypeError(`service ${name}: backoffMs must be 0 or more`);
  const instances = createInstanceSet({
    urls,
    connections: count(name, 'connections', options.connections ?? 8),
    breakerThreshold: count(name, 'breakerThreshold', options.breakerThreshold ?? 3),
    halfOpenAfterMs: positive(name, 'halfOpenAfterMs', options.halfOpenAfterMs ?? 1000),
    healthPath: options.healthPath ?? '/healthz',
    healthIntervalMs: positive(name, 'healthIntervalMs', options.healthIntervalMs ?? 500),
    healthTimeoutMs: positive(name, 'healthTimeoutMs', options.healthTimeoutMs ?? 250),
    onInstanceChange: options.onInstanceChange,
  });

  const unavailable = (reason: UnavailableReason, attempts: number, cause: unknown) => {
    const why =
      reason === 'no-instance'
        ? 'no instance in rotation'
        : reason === 'deadline'
          ? 'no answer within the deadline'
          : 'every attempt failed';
    const last = cause === undefined ? '' : ` (last: ${describeFailure(cause)})`;
    return new AppError('DEPENDENCY.UNAVAILABLE', `${name}: ${why} after ${attempts} attempt(s)${last}`, {
      cause,
      details: { dependency: name, reason, attempts } satisfies UnavailableDetails,
    });
  };
  const aborted = (attempts: number, cause: unknown) =>
    new AppError('REQUEST.ABORTED', `${name}: the caller gave up`, { cause, details: { dependency: name, attempts } });

  function request<T>(call: ServiceCall): Promise<ServiceAnswer<T>> {
    // A span inside a trace only: the call a request makes, not a background one of its own.
    if (!tracingActive()) return attemptAll(call, undefined);
    const method = call.method ?? 'GET';
    return inSpan(
      `${method} ${name}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { 'peer.service': name, 'http.request.method': method, 'url.path': call.path },
      },
      async (span) => {
        const answer = await attemptAll<T>(call, span);
        span.setAttributes({
          'http.response.status_code': answer.status,
          'server.address': answer.instance,
          'stratum.attempts': answer.attempts,
        });
        return answer;
      },
    );
  }

  async function attemptAll<T>(call: ServiceCall, span: Span | undefined): Promise<ServiceAnswer<T>> {
    const method = call.method ?? 'GET';
    const idempotent = call.idempotent ?? (method === 'GET' || method === 'HEAD');
    const own = call.deadlineMs === undefined ? Number.POSITIVE_INFINITY : now() + call.deadlineMs;
    // Without either, a call is still bounded: by its attempts, each within attemptTimeoutMs, and the backoffs.
    const deadlineAt = Math.min(own, currentDeadline() ?? Number.POSITIVE_INFINITY);
    const tried = new Set<Instance>();
    let attempts = 0;
    let last: unknown;
    for (;;) {
      if (call.signal?.aborted) throw aborted(attempts, call.signal.reason);
      const left = deadlineAt - now();
      if (left <= 0) throw unavailable('deadline', attempts, last);
      const instance = instances.pick(tried);
      if (!instance) throw unavailable(attempts === 0 ? 'no-instance' : 'failed', attempts, last);
      tried.add(instance);
      attempts++;
      // The trace context of this call's span, so the instance's spans are its children.
      const headers = span ? withTraceHeaders({ ...call.headers }) : call.headers;
      const sent = { method, path: call.path, body: call.body, headers, signal: call.signal };
      const cutAtDeadline = left <= attemptTimeoutMs;
      try {
        const answer = await instances.run(instance, () =>
          sendAttempt<T>(instance.pool, instance.url, sent, Math.min(left, attemptTimeoutMs), cutAtDeadline),
        );
        return { ...answer, instance: instance.url, attempts };
      } catch (error) {
        if (isBrokenCircuitError(error)) {
          attempts--; // it left the rotation between the pick and the call: nothing was tried
          continue;
        }
        last = error;
        const kind = error instanceof AttemptFailure ? error.kind : 'fatal';
        span?.addEvent('attempt failed', { attempt: attempts, instance: instance.url, reason: describeFailure(error) });
        if (kind === 'aborted') throw aborted(attempts, error);
        if (kind === 'deadline') throw unavailable('deadline', attempts, error);
        if (kind === 'fatal' || attempts >= maxAttempts) throw unavailable('failed', attempts, error);
        // Nothing reached the instance: another one, at once, whatever the method.
        if (kind === 'not-sent' && instances.hasUntried(tried)) continue;
        if (kind === 'transient' && !idempotent) throw unavailable('failed', attempts, error);
        // No time for the backoff and another attempt: fail now rather than sleep into the deadline.
        if (deadlineAt - now() <= backoffMs) throw unavailable('deadline', attempts, error);
        await sleep(backoffMs, call.signal);
      }
    }
  }

  return { name, request, state: () => instances.state(), close: () => instances.close() };
}

function validateUrls(name: string, urls: readonly string[] | undefined): string[] {
  if (!Array.isArray(urls) || urls.length === 0) throw new TypeError(`service ${name}: urls must list at least one`);
  const origins = urls.map((url: unknown) => {
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      throw new TypeError(`service ${name}: "${String(url)}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new TypeError(`service ${name}: "${String(url)}" is not an http(s) URL`);
    // Paths belong to each call; a base path here would be silently dropped by the pool.
    if (parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '')
      throw new TypeError(`service ${name}: "${String(url)}" must be an origin, without a path`);
    return parsed.origin;
  });
  const twice = origins.find((origin, index) => origins.indexOf(origin) !== index);
  if (twice !== undefined) throw new TypeError(`service ${name}: "${twice}" is listed twice`);
  return origins;
}

function positive(name: string, option: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`service ${name}: ${option} must be positive`);
  return value;
}

function count(name: string, option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new TypeError(`service ${name}: ${option} must be a whole number ≥ 1`);
  return value;
}

/** Resolves after `ms`, or at once when `signal` aborts (the loop then sees it). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
