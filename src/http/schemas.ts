import { Type } from '@fastify/type-provider-typebox';

/** The body of every error answer (application/problem+json). */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String(),
    detail: Type.String(),
  },
  { additionalProperties: true },
);

/** `:id` that must be a UUID; anything else is a 400 before the database sees it. */
export const AccountIdParams = Type.Object({
  id: Type.String({
    pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
    description: 'a UUID',
  }),
});

/**
 * A text field: `min..max` characters, not only whitespace, and no NUL (PostgreSQL text cannot hold it, so
 * it must be a 400 here rather than a database error).
 */
export function Text(minLength: number, maxLength: number, description?: string) {
  return Type.String({
    minLength,
    maxLength,
    pattern: '^(?=[\\s\\S]*\\S)[^\\u0000]*$',
    ...(description ? { description } : {}),
  });
}
