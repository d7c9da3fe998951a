import type { ErrorCode } from '../platform/errors/app-error.ts';

/** The one table from error code to HTTP status. */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  'REQUEST.INVALID': 400,
  'RESOURCE.NOT_FOUND': 404,
  'USER.ALREADY_EXISTS': 409,
  'USER.NOT_FOUND': 404,
  'ACCOUNT.NOT_FOUND': 404,
  'TX.DEADLINE_EXCEEDED': 503,
  'TX.SERIALIZATION_FAILED': 503,
  'DB.CONFLICT': 409,
  'DB.CONSTRAINT_VIOLATED': 422,
  'DB.INVALID_INPUT': 400,
  'DB.UNAVAILABLE': 503,
  'DB.QUERY_CANCELLED': 503,
  'DB.ERROR': 500,
  'MIGRATION.CHECKSUM_MISMATCH': 500,
  'MIGRATION.UNKNOWN_APPLIED': 500,
  'MIGRATION.LOCK_TIMEOUT': 503,
  'MIGRATION.INVALID': 500,
  'SERVER.SHUTTING_DOWN': 503,
  'SERVICE.UNAVAILABLE': 503,
  'INTERNAL': 500,
};

/** Codes worth retrying later; their answers carry Retry-After. */
export const RETRY_AFTER_SECONDS: Partial<Record<ErrorCode, number>> = {
  'TX.DEADLINE_EXCEEDED': 1,
  'TX.SERIALIZATION_FAILED': 1,
  'DB.UNAVAILABLE': 2,
  'DB.QUERY_CANCELLED': 1,
  'SERVER.SHUTTING_DOWN': 2,
};
