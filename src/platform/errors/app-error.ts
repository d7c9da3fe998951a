/**
 * The platform's error codes. Every failure stratum reports carries a stable code: one of these, or one a
 * context declares in its descriptor's error table (`NOTE.NOT_FOUND`, ...). The HTTP edge maps a code to a status
 * (src/http/error-statuses.ts and the contexts' tables); nothing below it knows about HTTP.
 */
export type ErrorCode =
  | 'REQUEST.INVALID'
  | 'REQUEST.ABORTED'
  | 'REQUEST.DEADLINE_EXCEEDED'
  | 'REQUEST.TOO_LARGE'
  | 'REQUEST.UNSUPPORTED_MEDIA_TYPE'
  | 'AUTH.UNAUTHORIZED'
  | 'DLQ.NOT_FOUND'
  | 'TRACE.NOT_FOUND'
  | 'TRACES.OFF'
  | 'RESOURCE.NOT_FOUND'
  | 'IDEMPOTENCY.KEY_REUSED'
  | 'SHARD.UNAVAILABLE'
  | 'SAGA.PENDING'
  | 'SAGA.NOT_FOUND'
  | 'SHARD.MOVING'
  | 'SHARD.CONFIG'
  | 'SHARD.SCHEMA'
  | 'TX.DEADLINE_EXCEEDED'
  | 'TX.SERIALIZATION_FAILED'
  | 'DB.CONFLICT'
  | 'DB.CONSTRAINT_VIOLATED'
  | 'DB.INVALID_INPUT'
  | 'DB.UNAVAILABLE'
  | 'DB.POOL_EXHAUSTED'
  | 'DB.QUERY_CANCELLED'
  | 'DB.ERROR'
  | 'MIGRATION.CHECKSUM_MISMATCH'
  | 'MIGRATION.UNKNOWN_APPLIED'
  | 'MIGRATION.LOCK_TIMEOUT'
  | 'MIGRATION.INVALID'
  | 'SERVER.SHUTTING_DOWN'
  | 'SERVICE.UNAVAILABLE'
  | 'DEPENDENCY.UNAVAILABLE'
  | 'INTERNAL';

/** A platform code, or a context's (`AREA.REASON`, upper case, listed in its context's error table). */
export type AnyErrorCode = ErrorCode | (string & {});

/** Details safe to show a client: no SQL, no parameters, no secrets. */
export type SafeDetails = Record<string, unknown>;

/**
 * The one error type of stratum: a stable `code`, a message for people, safe `details` and the `cause`.
 * @example throw new AppError('DB.UNAVAILABLE', `cannot reach ${host}`, { cause: error });
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: AnyErrorCode;
  readonly details: SafeDetails | undefined;

  constructor(code: AnyErrorCode, message: string, options: { cause?: unknown; details?: SafeDetails } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
}

/** True when `error` is an AppError, optionally with the given code. */
export function isAppError(error: unknown, code?: AnyErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}
