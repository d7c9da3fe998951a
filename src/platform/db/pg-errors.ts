import { AppError } from '../errors/app-error.ts';

/** The fields of a PostgreSQL error that postgres.js exposes; read structurally so any driver error fits. */
interface PgErrorLike {
  code?: unknown;
  constraint_name?: unknown;
  table_name?: unknown;
  column_name?: unknown;
  schema_name?: unknown;
  errno?: unknown;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);

/** The SQLSTATE of a PostgreSQL error, or undefined for anything else. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as PgErrorLike | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Running the whole transaction again may succeed: a serialization failure or deadlock (40001, 40P01), or a
 * connection that broke or could not be had (see isConnectionError), provided COMMIT was not sent yet.
 */
export function isRetryableTxError(error: unknown): boolean {
  const state = sqlState(error);
  return state === '40001' || state === '40P01' || isConnectionError(error);
}

/** The SQLSTATE or driver code a retry is counted under (`40001`, `57P01`, `CONNECTION_CLOSED`...). */
export function retryReason(error: unknown): string {
  const code = (error as PgErrorLike | null)?.code;
  return typeof code === 'string' ? code : 'unknown';
}

/** The connection broke or the server is going away (class 08, admin shutdown, cannot connect now). */
export function isConnectionError(error: unknown): boolean {
  const code = (error as PgErrorLike | null)?.code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  const state = sqlState(error);
  return state !== undefined && (state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03');
}

/**
 * Translates a driver error into an AppError; the one place where SQLSTATEs become stratum codes.
 * @example catch (e) { throw translatePgError(e) }
 */
export function translatePgError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const e = (error ?? {}) as PgErrorLike;
  const state = sqlState(error);
  const where = {
    ...(typeof e.constraint_name === 'string' ? { constraint: e.constraint_name } : {}),
    ...(typeof e.table_name === 'string' ? { table: e.table_name } : {}),
  };
  if (state === '23505')
    return new AppError('DB.CONFLICT', 'a row with the same unique key already exists', {
      cause: error,
      details: where,
    });
  if (state?.startsWith('23'))
    return new AppError('DB.CONSTRAINT_VIOLATED', 'a database constraint was violated', {
      cause: error,
      details: where,
    });
  if (state === '40001' || state === '40P01') {
    return new AppError('TX.SERIALIZATION_FAILED', 'the transaction conflicted with a concurrent one', {
      cause: error,
    });
  }
  if (state === '57014') return new AppError('DB.QUERY_CANCELLED', 'the query was cancelled', { cause: error });
  if (state?.startsWith('22'))
    return new AppError('DB.INVALID_INPUT', 'the database rejected a value', { cause: error });
  if (isConnectionError(error))
    return new AppError('DB.UNAVAILABLE', 'the database is not reachable', { cause: error });
  return new AppError('DB.ERROR', 'the database reported an error', { cause: error });
}
