import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ScoreMode } from '../../config/config.ts';
import type { Sql } from '../../platform/db/connect.ts';
import type { TransactionFn } from '../../platform/db/transaction.ts';
import { createOnce } from '../../http/idempotency.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import { decodeCursor, encodeCursor, isIdCursor } from '../../platform/pagination/cursor.ts';
import { publish } from '../../platform/context/events.ts';
import { UserCreated } from './events.ts';
import {
  findUserById,
  insertUserDeferringFanOut,
  insertUserLoggingFanOut,
  insertUserWithScoreFanOut,
  listActionsBefore,
  listUsersAfter,
} from './users-repository.ts';

/** All user events share one key: creations must be applied in creation order. */
export const USER_EVENTS_KEY = 'users';
import {
  ActionSchema,
  CreateUserBody,
  CreatedUserSchema,
  IdParams,
  PageQuery,
  ProblemSchema,
  UserSchema,
} from './schemas.ts';

export interface UsersDeps {
  sql: Sql;
  transaction: TransactionFn;
  /**
   * `sync`: the fan-out runs in the creating transaction; `async`: a consumer of user.created applies it;
   * `deferred`: the creation appends to the score log and reads move each score to the log's head.
   */
  scoreMode: ScoreMode;
  /** How long an Idempotency-Key of a creation is remembered. */
  idempotencyTtlMs: number;
  /**
   * Transactions for listings that may lag the primary a little (DATABASE_READ_URL's replicas); unset: `transaction`.
   * A read of one user by id stays on the primary: a client reads the user it has just created.
   */
  readTransaction?: TransactionFn;
}

function parseLimit(raw: string | undefined): number {
  const limit = raw === undefined ? 50 : Number(raw);
  if (limit < 1 || limit > 500)
    throw new AppError('REQUEST.INVALID', 'querystring.limit must be between 1 and 500', {
      details: { field: 'limit' },
    });
  return limit;
}

function parseId(raw: string): number {
  const id = Number(raw);
  if (id < 1 || id > 2_147_483_647)
    throw new AppError('REQUEST.INVALID', 'params.id must be between 1 and 2147483647', { details: { field: 'id' } });
  return id;
}

/** Cursor ids are ids of `serial` columns. */
function userIdOf(id: number): number {
  if (id > 2_147_483_647)
    throw new AppError('REQUEST.INVALID', 'cursor is not a cursor this endpoint issued', {
      details: { field: 'cursor' },
    });
  return id;
}

const errors = { 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 503: ProblemSchema };

/** POST /users, GET /users, GET /users/:id, GET /actions. */
export function usersRoutes(deps: UsersDeps) {
  const readTransaction = deps.readTransaction ?? deps.transaction;
  const scoreRead = deps.scoreMode === 'deferred' ? 'logged' : 'stored';
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/users',
      {
        schema: {
          tags: ['users'],
          summary: 'Create a user; every other user gets score = 1 + score + score / n',
          body: CreateUserBody,
          response: { 201: CreatedUserSchema, ...errors },
        },
      },
      async (request, reply) => {
        const body = request.body;
        const input = { username: body.username, score: body.score ?? 0, profile: body.profile };
        const store = { sql: deps.sql, transaction: deps.transaction, ttlMs: deps.idempotencyTtlMs };
        const txOptions = { label: 'users.create', isolation: 'read committed' } as const;
        if (deps.scoreMode === 'deferred') {
          return createOnce(request, reply, store, 'users.create', txOptions, async (tx) => {
            const user = await insertUserLoggingFanOut(tx, input);
            await publish(tx, UserCreated, USER_EVENTS_KEY, { id: user.id, username: user.username });
            return { ...user, scoreFanout: 'deferred' as const };
          });
        }
        if (deps.scoreMode === 'async') {
          return createOnce(request, reply, store, 'users.create', txOptions, async (tx) => {
            const created = await insertUserDeferringFanOut(tx, input);
            await publish(tx, UserCreated, USER_EVENTS_KEY, {
              id: created.user.id,
              username: created.user.username,
              others: created.others,
            });
            return { ...created.user, scoreFanout: 'pending' as const };
          });
        }
        return createOnce(request, reply, store, 'users.create', txOptions, async (tx) => {
          const created = await insertUserWithScoreFanOut(tx, input);
          await publish(tx, UserCreated, USER_EVENTS_KEY, { id: created.id, username: created.username });
          return created;
        });
      },
    );

    app.get(
      '/users',
      {
        schema: {
          tags: ['users'],
          summary: 'Users in id order, keyset pages',
          querystring: PageQuery,
          response: {
            200: Type.Object({ items: Type.Array(UserSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
            ...errors,
          },
        },
      },
      async (request) => {
        const limit = parseLimit(request.query.limit);
        const after = request.query.cursor ? userIdOf(decodeCursor(request.query.cursor, isIdCursor).id) : 0;
        const items = await readTransaction({ label: 'users.list', readOnly: true, autocommit: true }, (tx) =>
          listUsersAfter(tx, after, limit, scoreRead),
        );
        const last = items.at(-1);
        return { items, nextCursor: items.length === limit && last ? encodeCursor({ id: last.id }) : null };
      },
    );

    app.get(
      '/users/:id',
      {
        schema: { tags: ['users'], params: IdParams, response: { 200: UserSchema, ...errors } },
      },
      async (request) => {
        const id = parseId(request.params.id);
        const user = await deps.transaction({ label: 'users.get', readOnly: true, autocommit: true }, (tx) =>
          findUserById(tx, id, scoreRead),
        );
        if (!user) throw new AppError('USER.NOT_FOUND', `user ${id} does not exist`, { details: { id } });
        return user;
      },
    );

    app.get(
      '/actions',
      {
        schema: {
          tags: ['users'],
          summary: 'Actions newest first, keyset pages',
          querystring: PageQuery,
          response: {
            200: Type.Object({ items: Type.Array(ActionSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
            ...errors,
          },
        },
      },
      async (request) => {
        const limit = parseLimit(request.query.limit);
        const before = request.query.cursor ? userIdOf(decodeCursor(request.query.cursor, isIdCursor).id) : undefined;
        const items = await readTransaction({ label: 'actions.list', readOnly: true, autocommit: true }, (tx) =>
          listActionsBefore(tx, before, limit),
        );
        const last = items.at(-1);
        return { items, nextCursor: items.length === limit && last ? encodeCursor({ id: last.id }) : null };
      },
    );
  };
}
