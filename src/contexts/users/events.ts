import { defineEvent, Type } from '../../platform/context/events.ts';

/**
 * A user was created. `others` (SCORE_MODE=async): how many users existed besides it, whose scores the
 * fan-out consumer raises; absent when the fan-out already ran in the creating transaction.
 */
export const UserCreated = defineEvent(
  'user.created',
  Type.Object({
    id: Type.Integer(),
    username: Type.String(),
    others: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
);

export const USERS_EVENTS = [UserCreated] as const;
