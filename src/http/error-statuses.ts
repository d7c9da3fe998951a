import type { ErrorStatus, ErrorTable } from '../platform/context/context-module.ts';
import type { ErrorCode } from '../platform/errors/app-error.ts';

/** The platform's codes with their HTTP statuses; each context brings its own table in its descriptor. */
export const PLATFORM_ERRORS: Readonly<Record<ErrorCode, ErrorStatus>> = {
  'REQUEST.INVALID': { status: 400 },
  'REQUEST.ABORTED': { status: 400 },
  'REQUEST.DEADLINE_EXCEEDED': { status: 503, retryAfterSeconds: 1 },
  'REQUEST.TOO_LARGE': { status: 413 },
  'REQUEST.UNSUPPORTED_MEDIA_TYPE': { status: 415 },
  'AUTH.UNAUTHORIZED': { status: 401 },
  'DLQ.NOT_FOUND': { status: 404 },
  'TRACE.NOT_FOUND': { status: 404 },
  'TRACES.OFF': { status: 404 },
  'RESOURCE.NOT_FOUND': { status: 404 },
  'IDEMPOTENCY.KEY_REUSED': { status: 422 },
  'SHARD.UNAVAILABLE': { status: 503, retryAfterSeconds: 1 },
  'SAGA.PENDING': { status: 503, retryAfterSeconds: 1 },
  'SAGA.NOT_FOUND': { status: 404 },
  'SHARD.MOVING': { status: 503, retryAfterSeconds: 1 },
  'SHARD.CONFIG': { status: 500 },
  'SHARD.SCHEMA': { status: 500 },
  'TX.DEADLINE_EXCEEDED': { status: 503, retryAfterSeconds: 1 },
  'TX.SERIALIZATION_FAILED': { status: 503, retryAfterSeconds: 1 },
  'DB.CONFLICT': { status: 409 },
  'DB.CONSTRAINT_VIOLATED': { status: 422 },
  'DB.INVALID_INPUT': { status: 400 },
  'DB.UNAVAILABLE': { status: 503, retryAfterSeconds: 2 },
  'DB.POOL_EXHAUSTED': { status: 503, retryAfterSeconds: 1 },
  'DB.QUERY_CANCELLED': { status: 503, retryAfterSeconds: 1 },
  'DB.ERROR': { status: 500 },
  'MIGRATION.CHECKSUM_MISMATCH': { status: 500 },
  'MIGRATION.UNKNOWN_APPLIED': { status: 500 },
  'MIGRATION.LOCK_TIMEOUT': { status: 503 },
  'MIGRATION.INVALID': { status: 500 },
  'SERVER.SHUTTING_DOWN': { status: 503, retryAfterSeconds: 2 },
  'SERVICE.UNAVAILABLE': { status: 503 },
  'DEPENDENCY.UNAVAILABLE': { status: 503, retryAfterSeconds: 1 },
  INTERNAL: { status: 500 },
};

const CODE = /^[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*$/;

/**
 * The one table from error code to HTTP status: the platform's and every context's. A code two tables give
 * different statuses, or one that is not `AREA.REASON`, is refused at start.
 * @example const errors = mergeErrorTables([PLATFORM_ERRORS, usersModule.errors, ordersModule.errors]);
 */
export function mergeErrorTables(tables: readonly ErrorTable[]): ErrorTable {
  const merged: Record<string, ErrorStatus> = {};
  for (const table of tables) {
    for (const [code, entry] of Object.entries(table)) {
      if (!CODE.test(code) && code !== 'INTERNAL')
        throw new TypeError(`error code "${code}" is not AREA.REASON in upper case`);
      const known = merged[code];
      if (known && (known.status !== entry.status || known.retryAfterSeconds !== entry.retryAfterSeconds)) {
        throw new TypeError(`error code ${code} is given two statuses: ${known.status} and ${entry.status}`);
      }
      merged[code] = entry;
    }
  }
  return merged;
}
