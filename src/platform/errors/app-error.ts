/**
 * Every failure stratum reports carries one of these codes. The HTTP edge maps a code to a status
 * (src/http/error-statuses.ts); nothing below it knows about HTTP.
 */
export type ErrorCode =
  | 'REQUEST.INVALID'
  | 'REQUEST.ABORTED'
  | 'REQUEST.DEADLINE_EXCEEDED'
  | 'RESOURCE.NOT_FOUND'
  | 'USER.ALREADY_EXISTS'
  | 'USER.NOT_FOUND'
  | 'ACCOUNT.NOT_FOUND'
  | 'ORDER.NOT_FOUND'
  | 'ORDER.INVALID_TRANSITION'
  | 'IMPORT.REJECTED'
  | 'IDEMPOTENCY.KEY_REUSED'
  | 'STOCK.INSUFFICIENT'
  | 'PAYMENT.DECLINED'
  | 'PAYMENT.UNAVAILABLE'
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
  | 'INTERNAL';

/** Details safe to show a client: no SQL, no parameters, no secrets. */
export type SafeDetails = Record<string, unknown>;

/**
 * The one error type of stratum: a stable `code`, a message for people, safe `details` and the `cause`.
 * @example throw new AppError('USER.NOT_FOUND', `user ${id} does not exist`, { details: { id } });
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: ErrorCode;
  readonly details: SafeDetails | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: SafeDetails } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
}

/** True when `error` is an AppError, optionally with the given code. */
export function isAppError(error: unknown, code?: ErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}
