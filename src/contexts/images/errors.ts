import type { ErrorTable } from '../../platform/context/context-module.ts';

/** The images context's error codes: an image is set only on an account the accounts context knows. */
export const IMAGES_ERRORS = {
  'ACCOUNT.NOT_FOUND': { status: 404 },
} as const satisfies ErrorTable;
