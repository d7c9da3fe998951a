import { Type } from '@fastify/type-provider-typebox';
import { Text } from '../../http/schemas.ts';

const Name = Text(1, 100);

export const CreateUserBody = Type.Object(
  {
    username: Name,
    score: Type.Optional(Type.Number({ default: 0, minimum: -1e15, maximum: 1e15 })),
    profile: Type.Object({ firstname: Name, lastname: Name }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const UserSchema = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  score: Type.Number(),
  created: Type.String({ format: 'date-time' }),
  updated: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  profile: Type.Object({ firstname: Type.String(), lastname: Type.String() }),
});

/**
 * The answer to POST /users; `scoreFanout: "pending"` when SCORE_MODE=async (a consumer raises the other users
 * later), `"deferred"` when SCORE_MODE=deferred (reads already show the raised scores).
 */
export const CreatedUserSchema = Type.Intersect([
  UserSchema,
  Type.Object({ scoreFanout: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('deferred')])) }),
]);

export const ActionSchema = Type.Object({
  id: Type.Integer(),
  description: Type.String(),
  created: Type.String({ format: 'date-time' }),
});

export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$', description: '1..500, default 50' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const IdParams = Type.Object({ id: Type.String({ pattern: '^[0-9]{1,10}$' }) });

export { ProblemSchema } from '../../http/schemas.ts';
