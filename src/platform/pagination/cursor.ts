import { AppError } from '../errors/app-error.ts';

/**
 * Opaque keyset cursors: the key of the last row a page held, base64url-encoded JSON. Clients treat them
 * as strings; a cursor that does not decode to the expected shape is a REQUEST.INVALID, never a database error.
 * @example const next = encodeCursor({ id: 42 }); const { id } = decodeCursor(next, isIdCursor);
 */
export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

export function decodeCursor<T>(cursor: string, isValid: (value: unknown) => value is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!isValid(value))
    throw new AppError('REQUEST.INVALID', 'cursor is not a cursor this endpoint issued', {
      details: { field: 'cursor' },
    });
  return value;
}

/** A cursor holding a positive integer id. */
export function isIdCursor(value: unknown): value is { id: number } {
  const id = (value as { id?: unknown } | null)?.id;
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 && Object.keys(value as object).length === 1;
}
