import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Sql } from '../../platform/db/connect.ts';
import type { TransactionFn } from '../../platform/db/transaction.ts';
import { createOnce } from '../../http/idempotency.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import { publish } from '../../platform/context/events.ts';
import { AccountCreated, AccountUpdated } from './events.ts';
import { AccountIdParams, ProblemSchema, Text } from '../../http/schemas.ts';
import type { CachedView, ImageLookup, QuoteLookup } from './account.ts';
import { composeView, loadAccountView, quoteWithin } from './account-view.ts';
import { countEventsByNamePrefix, findAccountWithEvents, insertAccount, renameAccount } from './accounts-repository.ts';

/** The read cache as accounts uses it (the platform cache satisfies it). */
export interface AccountViewCache {
  getOrLoad(
    key: string,
    load: (signal: AbortSignal) => Promise<CachedView | undefined>,
    options?: { shouldCache?: (value: CachedView) => boolean },
  ): Promise<CachedView | undefined>;
  invalidate(key: string): Promise<void>;
}

export interface AccountsDeps {
  sql: Sql;
  transaction: TransactionFn;
  /** How long an Idempotency-Key of a creation is remembered. */
  idempotencyTtlMs: number;
  lookupImage: ImageLookup;
  /** The quotes context's port; a failure or QUOTES_TIMEOUT_MS without an answer gives the fallback quote. */
  lookupQuote: QuoteLookup;
  quotesTimeoutMs: number;
  /** This process's INSTANCE_NAME, for `servedBy`. */
  instance: string;
  /**
   * Whether this process answers GET /accounts/:id with the whole view (one process); false on the accounts-data
   * service, whose gateway composes the view from GET /internal/accounts/:id and the other services.
   */
  servesViews: boolean;
  cache: AccountViewCache;
  /** Called for each read of an account view from the databases (a cache miss that loads). */
  onViewLoad?: () => void;
  /**
   * Transactions for reads that may lag the primary a little (DATABASE_READ_URL's replicas); unset: `transaction`.
   * An account's view stays on the primary: it is cached, and a rename must not be followed by the old name.
   */
  readTransaction?: TransactionFn;
}

/** The cache key of an account's view; the images context's writes drop it too. */
export function accountViewKey(id: string): string {
  return `account:${id.toLowerCase()}`;
}

const Event = Type.Object({
  id: Type.String(),
  eventName: Type.String(),
  created: Type.String({ format: 'date-time' }),
});
const AccountSchema = Type.Object({ id: Type.String(), name: Type.String(), events: Type.Array(Event) });
const AccountRecordSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  events: Type.Array(Event),
  servedBy: Type.String({ description: 'the instance that read it' }),
});
/** The answer of GET /accounts/:id, in one process and from the split deployment's gateway alike. */
export const AccountViewSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  events: Type.Array(Event),
  imageData: Type.Union([Type.Object({ url: Type.String() }), Type.Null()]),
  quote: Type.Object({ quote: Type.String(), language: Type.String(), ipAddress: Type.String() }),
  servedBy: Type.Object(
    {
      gateway: Type.String(),
      account: Type.String(),
      image: Type.Optional(Type.String()),
      quote: Type.Optional(Type.String()),
    },
    { description: 'the instance (INSTANCE_NAME) that served each part; a degraded part has none' },
  ),
  degraded: Type.Optional(Type.Array(Type.String(), { description: '`images`, `quotes`: the parts that stood in' })),
});
const NameBody = Type.Object({ name: Text(1, 100) }, { additionalProperties: false });
const PrefixQuery = Type.Object(
  {
    namePrefix: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: '^[^\\u0000]*$',
      description: 'matched literally: _ and % are plain characters',
    }),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$', description: '1..1000, default 100' })),
  },
  { additionalProperties: false },
);
const errors = { 400: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema };
/** A degraded view (the images context failed) is answered but not cached. */
const CACHE_COMPLETE_VIEWS_ONLY = { shouldCache: (view: CachedView) => view.degraded === undefined };

/** POST /accounts, PUT /accounts/:id, GET /accounts/:id, GET /accounts?namePrefix= */
export function accountsRoutes(deps: AccountsDeps) {
  const notFound = (id: string) =>
    new AppError('ACCOUNT.NOT_FOUND', `account ${id} does not exist`, { details: { id } });

  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/accounts',
      {
        schema: {
          tags: ['accounts'],
          summary: 'Create an account (with its CREATED event)',
          body: NameBody,
          response: { 201: AccountSchema, ...errors },
        },
      },
      async (request, reply) =>
        createOnce(
          request,
          reply,
          { sql: deps.sql, transaction: deps.transaction, ttlMs: deps.idempotencyTtlMs },
          'accounts.create',
          { label: 'accounts.create' },
          async (tx) => {
            const created = await insertAccount(tx, request.body.name);
            await publish(tx, AccountCreated, created.id, { id: created.id, name: created.name });
            return created;
          },
        ),
    );

    app.put(
      '/accounts/:id',
      {
        schema: {
          tags: ['accounts'],
          summary: 'Rename an account (appends an UPDATED event)',
          params: AccountIdParams,
          body: NameBody,
          response: { 200: AccountSchema, ...errors },
        },
      },
      async (request) => {
        const id = request.params.id.toLowerCase();
        // A rename sets the name: committing it twice leaves what once does (and a second account.updated event,
        // which consumers treat like the first), so a commit cut by a failover runs again.
        const account = await deps.transaction({ label: 'accounts.rename', rerunIfCommitUnknown: true }, async (tx) => {
          const renamed = await renameAccount(tx, id, request.body.name);
          if (renamed) await publish(tx, AccountUpdated, id, { id, name: renamed.name });
          return renamed;
        });
        if (!account) throw notFound(id);
        await deps.cache.invalidate(accountViewKey(id));
        return account;
      },
    );

    app.get(
      '/internal/accounts/:id',
      {
        schema: {
          tags: ['internal'],
          summary: 'An account with its events, without image or quote (what the gateway composes a view from)',
          params: AccountIdParams,
          response: { 200: AccountRecordSchema, ...errors },
        },
      },
      async (request) => {
        const id = request.params.id.toLowerCase();
        const account = await deps.transaction({ label: 'accounts.record', readOnly: true, autocommit: true }, (tx) =>
          findAccountWithEvents(tx, id),
        );
        if (!account) throw notFound(id);
        return { ...account, servedBy: deps.instance };
      },
    );

    if (deps.servesViews) {
      app.get(
        '/accounts/:id',
        {
          schema: {
            tags: ['accounts'],
            summary: 'An account with its events, image and a quote',
            params: AccountIdParams,
            response: { 200: AccountViewSchema, ...errors },
          },
        },
        async (request) => {
          const id = request.params.id.toLowerCase();
          const [view, quote] = await Promise.all([
            deps.cache.getOrLoad(
              accountViewKey(id),
              () => {
                deps.onViewLoad?.();
                // Through transaction(): a read that meets a failover (connection lost, no primary yet) runs again
                // within the request's deadline instead of failing. Autocommit: one statement needs no BEGIN and
                // COMMIT, which had halved the uncached read's throughput (docs/benchmarks.md).
                return deps.transaction({ label: 'accounts.view', readOnly: true, autocommit: true }, (tx) =>
                  loadAccountView(tx, deps.lookupImage, id, deps.instance),
                );
              },
              CACHE_COMPLETE_VIEWS_ONLY,
            ),
            quoteWithin(deps.lookupQuote, deps.quotesTimeoutMs),
          ]);
          if (!view) throw notFound(id);
          return composeView(view, quote, deps.instance);
        },
      );
    }

    app.get(
      '/accounts',
      {
        schema: {
          tags: ['accounts'],
          summary: 'Event counts per account name starting with a prefix',
          querystring: PrefixQuery,
          response: { 200: Type.Array(Type.Object({ name: Type.String(), count: Type.Integer() })), ...errors },
        },
      },
      async (request) => {
        const limit = request.query.limit === undefined ? 100 : Number(request.query.limit);
        if (limit < 1 || limit > 1000)
          throw new AppError('REQUEST.INVALID', 'querystring.limit must be between 1 and 1000', {
            details: { field: 'limit' },
          });
        // Through transaction(): a read cut by a failover runs again within the request's deadline.
        return (deps.readTransaction ?? deps.transaction)(
          { label: 'accounts.count-by-prefix', readOnly: true, autocommit: true },
          (tx) => countEventsByNamePrefix(tx, request.query.namePrefix, limit),
        );
      },
    );
  };
}
