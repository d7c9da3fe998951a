import type { ErrorTable } from '../../platform/context/context-module.ts';

/** The accounts context's error codes and their HTTP statuses. */
export const ACCOUNTS_ERRORS = {
  'ACCOUNT.NOT_FOUND': { status: 404 },
} as const satisfies ErrorTable;
