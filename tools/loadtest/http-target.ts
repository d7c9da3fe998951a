import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { CLIENT_TIMEOUT, type Outcome } from './tally.ts';

/** One request a scenario wants made. */
export interface RequestPlan {
  /** The row it is reported under: read, create, update, change, list, query. */
  kind: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  /** Path and query under the target URL, starting with `/`. */
  path: string;
  body?: unknown;
  /** A body sent as it is instead of `body` as JSON, e.g. CSV lines for an import. */
  rawBody?: { contentType: string; text: string };
  /** Extra request headers, e.g. an Idempotency-Key on a creation. */
  headers?: Record<string, string>;
  expectStatus: number;
  /** Sees the parsed body of an expected answer; returning false marks the answer malformed. */
  accept?: (body: unknown) => boolean;
  /**
   * Told what became of the request once it is over: its outcome, or null when it was never sent (too many
   * in flight). A scenario that holds something for the request (an order being changed) lets go here.
   */
  onSettled?: (outcome: Outcome | null) => void;
  /** Sees every HTTP answer, whatever its status, before `accept` and `onSettled`. */
  onAnswer?: (answer: HttpAnswer) => void;
}

/** One HTTP answer as a scenario's bookkeeping sees it. */
export interface HttpAnswer {
  status: number;
  /** The Retry-After header, when the answer carried one. */
  retryAfter: string | undefined;
  /** The parsed JSON body, or undefined when it was not JSON. */
  body: unknown;
  latencyMs: number;
}

/**
 * The service under load, as the runner and the read-back use it. `openHttpTarget` is the real one; tests
 * may bring their own.
 */
export interface HttpTarget {
  /**
   * Makes one request and says what became of it. Latency runs from `scheduledAt` (a `performance.now()`
   * value), not from when the request left, so a client that falls behind cannot hide the wait.
   */
  send(plan: RequestPlan, scheduledAt: number): Promise<Outcome>;
  close(): Promise<void>;
}

export const CLIENT_INVALID_RESPONSE = 'CLIENT.INVALID_RESPONSE';

/**
 * Opens a pool with as many connections as requests may be in flight, so requests queue on the server,
 * where the measurement belongs, not in the client.
 */
export function openHttpTarget(url: URL, connections: number, timeoutMs: number): HttpTarget {
  const pool = new Pool(url.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    // The per-request signal decides; these only stop a socket from hanging past it.
    headersTimeout: timeoutMs + 1_000,
    bodyTimeout: timeoutMs + 1_000,
  });
  const basePath = url.pathname.replace(/\/+$/, '');
  return {
    send: (plan, scheduledAt) => sendOverPool(pool, basePath, timeoutMs, plan, scheduledAt),
    close: () => pool.destroy(),
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function problemCode(body: unknown): string | undefined {
  const code = (body as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && code.length > 0 ? code : undefined;
}

function hasDegraded(body: unknown): boolean {
  const degraded = (body as { degraded?: unknown } | null | undefined)?.degraded;
  return Array.isArray(degraded) && degraded.length > 0;
}

/** The code a failed request is grouped under when no HTTP answer came. */
export function networkErrorCode(error: unknown): string {
  const e = error as { name?: string; code?: unknown; cause?: { code?: unknown } } | undefined;
  if (e?.name === 'TimeoutError' || e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT')
    return CLIENT_TIMEOUT;
  if (typeof e?.code === 'string') return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  return e?.name ?? 'UNKNOWN';
}

function contentType(plan: RequestPlan): Record<string, string> {
  if (plan.rawBody) return { 'content-type': plan.rawBody.contentType };
  return plan.body === undefined ? {} : { 'content-type': 'application/json' };
}

async function sendOverPool(
  pool: Pool,
  basePath: string,
  timeoutMs: number,
  plan: RequestPlan,
  scheduledAt: number,
): Promise<Outcome> {
  try {
    const answer = await pool.request({
      method: plan.method,
      path: `${basePath}${plan.path}`,
      headers: { accept: 'application/json', ...contentType(plan), ...plan.headers },
      body: plan.rawBody ? plan.rawBody.text : plan.body === undefined ? undefined : JSON.stringify(plan.body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await answer.body.text();
    const latencyMs = performance.now() - scheduledAt;
    const status = answer.statusCode;
    if (plan.onAnswer) {
      const retryAfter = answer.headers['retry-after'];
      plan.onAnswer({
        status,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        body: parseJson(text),
        latencyMs,
      });
    }
    if (status !== plan.expectStatus) {
      return { ok: false, code: problemCode(parseJson(text)) ?? String(status), status, latencyMs };
    }
    const body = parseJson(text);
    if (plan.accept && !plan.accept(body)) return { ok: false, code: CLIENT_INVALID_RESPONSE, status, latencyMs };
    return { ok: true, latencyMs, degraded: hasDegraded(body) };
  } catch (error) {
    return { ok: false, code: networkErrorCode(error), status: null, latencyMs: null };
  }
}
