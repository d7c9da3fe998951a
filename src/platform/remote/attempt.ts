import type { Pool } from 'undici';

/** The header that tells a callee how many milliseconds its caller will wait for this attempt (an integer, ≥ 1). */
export const DEADLINE_HEADER = 'x-stratum-deadline-ms';

/**
 * How an attempt went wrong, which decides what comes next:
 * - `not-sent`: the connection could not be opened, nothing reached the instance; another instance at once,
 *   whatever the method. Counts against the instance.
 * - `transient`: it may have reached the instance (attempt timeout, 502/503/504, a socket lost after writing);
 *   retried after the backoff, idempotent calls only. Counts against the instance.
 * - `deadline`: cut at the call's deadline; nothing is left to retry with. Not the instance's fault.
 * - `aborted`: the caller's signal fired. Not the instance's fault.
 * - `fatal`: a bad answer or a misuse (JSON that does not parse, the pool closed); neither retried nor counted.
 */
export type FailureKind = 'not-sent' | 'transient' | 'deadline' | 'aborted' | 'fatal';

/** One failed attempt: what kind of failure, on which instance, the answer's status if there was one. */
export class AttemptFailure extends Error {
  override name = 'AttemptFailure';
  readonly status: number | undefined;

  constructor(
    readonly kind: FailureKind,
    readonly instance: string,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

/** True for a failure that is the instance's doing, i.e. one its circuit breaker counts. */
export function countsAgainstInstance(error: unknown): boolean {
  return error instanceof AttemptFailure && (error.kind === 'not-sent' || error.kind === 'transient');
}

/** Statuses that say the instance could not serve: a gateway failed, it is overloaded or going away. */
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);

/** The connection could not be opened: nothing was sent. */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** The connection broke; the request may have been written, so it may have been acted on. */
const LOST_CODES = new Set([
  'UND_ERR_SOCKET',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Sorts a transport error. A socket undici reports closed counts as not sent only when its info says no byte
 * was written on it (a fresh connection dropped at once); a raw ECONNRESET carries no such info, so it is
 * taken as possibly sent.
 */
function transportKind(error: unknown): FailureKind {
  const code = errorCode(error);
  if (code === undefined) return 'fatal';
  if (CONNECT_CODES.has(code)) return 'not-sent';
  if (code === 'UND_ERR_SOCKET') {
    const written = (error as { socket?: { bytesWritten?: number } }).socket?.bytesWritten;
    return written === 0 ? 'not-sent' : 'transient';
  }
  return LOST_CODES.has(code) ? 'transient' : 'fatal';
}

/** A short, safe description of a failure for `state().lastError`. */
export function describeFailure(error: unknown): string {
  if (error instanceof AttemptFailure) return error.message;
  return errorCode(error) ?? (error instanceof Error ? error.message : String(error));
}

export interface AttemptRequest {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface AttemptAnswer<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** The reasons an attempt's own controller aborts with, so its failure can be told from the caller's. */
const CUT_AT_DEADLINE = Symbol('deadline');
const TIMED_OUT = Symbol('attempt timeout');

/**
 * One attempt on one instance's pool, waiting at most `waitMs`; `cutAtDeadline` says whether that wait ends
 * at the call's deadline (rather than at the attempt timeout). The body is always read to its end, so the
 * connection goes back to the pool. Rejects with an AttemptFailure.
 * @example const answer = await sendAttempt(pool, url, { method: 'GET', path: '/quotes' }, 1000, false);
 */
export async function sendAttempt<T>(
  pool: Pool,
  instance: string,
  request: AttemptRequest,
  waitMs: number,
  cutAtDeadline: boolean,
): Promise<AttemptAnswer<T>> {
  const wait = Math.max(1, Math.floor(waitMs));
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(cutAtDeadline ? CUT_AT_DEADLINE : TIMED_OUT), wait);
  const onCallerAbort = () => controller.abort(request.signal?.reason);
  request.signal?.addEventListener('abort', onCallerAbort, { once: true });
  try {
    const headers: Record<string, string> = { ...request.headers, [DEADLINE_HEADER]: String(wait) };
    let body: string | undefined;
    if (request.body !== undefined) {
      body = JSON.stringify(request.body);
      headers['content-type'] = 'application/json';
    }
    const answer = await pool.request({
      method: request.method as 'GET',
      path: request.path,
      headers,
      body,
      signal: controller.signal,
    });
    const text = await answer.body.text();
    if (UNAVAILABLE_STATUSES.has(answer.statusCode)) {
      throw new AttemptFailure('transient', instance, `answered ${answer.statusCode}`, {
        status: answer.statusCode,
      });
    }
    return { status: answer.statusCode, headers: answer.headers, body: parseBody<T>(instance, answer.headers, text) };
  } catch (error) {
    if (error instanceof AttemptFailure) throw error;
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
    if (reason === TIMED_OUT) throw new AttemptFailure('transient', instance, `no answer within ${wait} ms`);
    if (reason === CUT_AT_DEADLINE) throw new AttemptFailure('deadline', instance, 'no answer by the deadline');
    if (controller.signal.aborted)
      throw new AttemptFailure('aborted', instance, 'the caller gave up', { cause: reason });
    throw new AttemptFailure(transportKind(error), instance, describeFailure(error), { cause: error });
  } finally {
    clearTimeout(timer);
    request.signal?.removeEventListener('abort', onCallerAbort);
  }
}

function parseBody<T>(instance: string, headers: Record<string, string | string[] | undefined>, text: string): T {
  const type = String(headers['content-type'] ?? '');
  if (!/[/+]json\b/i.test(type) || text.length === 0) return text as T;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new AttemptFailure('fatal', instance, 'answered JSON that does not parse', { cause: error });
  }
}
