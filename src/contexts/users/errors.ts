import type { ErrorTable } from '../../platform/context/context-module.ts';

/** The users context's error codes and their HTTP statuses. */
export const USERS_ERRORS = {
  'USER.ALREADY_EXISTS': { status: 409 },
  'USER.NOT_FOUND': { status: 404 },
} as const satisfies ErrorTable;
