import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { consoleGuard, givenToken } from '../console-access.ts';
import { CONTENT_SECURITY_POLICY } from './html.ts';
import { BASE, errorPage, indexPage, Links, rowPage, tablePage, type Place } from './pages.ts';
import {
  describeError,
  listDatabase,
  readRow,
  readTablePage,
  statusOf,
  type DataBrowserContext,
  type Filter,
} from './sources.ts';

const Name = Type.String({ minLength: 1, maxLength: 100 });
const TableParams = Type.Object({ context: Name, database: Name, schema: Name, table: Name });
const Token = Type.Optional(Type.String({ maxLength: 1000 }));
const IndexQuery = Type.Object({ token: Token }, { additionalProperties: false });
const TableQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ maxLength: 4000 })),
    col: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    eq: Type.Optional(Type.String({ maxLength: 4000 })),
    token: Token,
  },
  { additionalProperties: false },
);
const RowQuery = Type.Object({ key: Type.String({ maxLength: 4000 }), token: Token }, { additionalProperties: false });

/**
 * The data browser: read-only HTML pages of each context's tables (`/dashboard/data-browser`), a table's rows
 * 50 at a time by keyset on its primary key with its indexes and the plan of the page's query, one row with
 * what it references and what references it (an order's items, on its shard). Each context is read on its own
 * pools, in its own schemas only.
 *
 * Access: when `open` (the service listens on loopback only) every page is served without a token. Otherwise every
 * page needs `Authorization: Bearer <token>` or `?token=<token>`, and answers 401 problem+json (AUTH.UNAUTHORIZED)
 * without it; with no token configured the routes still answer, always 401, and show nothing.
 * @example app routes: [dataBrowserRoutes({ contexts, token: config.adminToken, open: false })]
 */
export function dataBrowserRoutes(deps: {
  contexts: DataBrowserContext[];
  token: string | undefined;
  open: boolean;
}): (app: FastifyInstance) => void {
  return (root: FastifyInstance): void => {
    const token = deps.token || undefined;
    const app = root.withTypeProvider<TypeBoxTypeProvider>();

    const guard = consoleGuard({ open: deps.open, token, what: 'the data browser' });
    /** Links keep `?token=` when the page was reached with it (a bookmark, a link from the dashboard). */
    const linksFor = (request: FastifyRequest) => {
      const given = deps.open ? undefined : givenToken(request);
      return new Links(given?.inQuery ? given.value : undefined);
    };
    const send = (reply: FastifyReply, status: number, body: string) =>
      reply
        .code(status)
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('referrer-policy', 'no-referrer')
        .header('x-content-type-options', 'nosniff')
        .header('x-frame-options', 'DENY')
        .send(body);

    /** The context and database a path names, and the schema when it is one of the context's; else a 404 page. */
    const locate = (at: Place) => {
      const context = deps.contexts.find((c) => c.name === at.context);
      if (!context) return { missing: `no context ${at.context}` } as const;
      const database = context.databases.find((d) => d.name === at.database);
      if (!database) return { missing: `context ${context.name} has no database ${at.database}` } as const;
      if (!context.schemas.includes(at.schema))
        return { missing: `${at.schema} is not a schema of context ${context.name}` } as const;
      return { context, database } as const;
    };

    app.get(
      BASE,
      { onRequest: guard, config: { deadlineMs: 15_000 }, schema: { hide: true, querystring: IndexQuery } },
      async (request, reply) => {
        const listings = await Promise.all(
          deps.contexts.map(async (context) => ({
            context,
            databases: await Promise.all(context.databases.map((db) => listDatabase(context, db))),
          })),
        );
        return send(reply, 200, indexPage(linksFor(request), listings));
      },
    );

    app.get(
      `${BASE}/:context/:database/:schema/:table`,
      {
        onRequest: guard,
        config: { deadlineMs: 10_000 },
        schema: { hide: true, params: TableParams, querystring: TableQuery },
      },
      async (request, reply) => {
        const links = linksFor(request);
        const at = request.params;
        const found = locate(at);
        if ('missing' in found) return send(reply, 404, errorPage(links, 404, found.missing!));
        const { col, eq, after } = request.query;
        if ((col === undefined) !== (eq === undefined))
          return send(reply, 400, errorPage(links, 400, 'give col and eq together', at));
        const filter: Filter | undefined = col !== undefined ? { column: col, value: eq! } : undefined;
        try {
          const page = await readTablePage(found.database.sql, { schema: at.schema, table: at.table, after, filter });
          return send(reply, 200, tablePage(links, found.context, at, page, after));
        } catch (error) {
          return failed(request, reply, links, error, at);
        }
      },
    );

    app.get(
      `${BASE}/:context/:database/:schema/:table/row`,
      {
        onRequest: guard,
        config: { deadlineMs: 10_000 },
        schema: { hide: true, params: TableParams, querystring: RowQuery },
      },
      async (request, reply) => {
        const links = linksFor(request);
        const at = request.params;
        const found = locate(at);
        if ('missing' in found) return send(reply, 404, errorPage(links, 404, found.missing!));
        try {
          const row = await readRow(found.database.sql, {
            schema: at.schema,
            table: at.table,
            key: request.query.key,
            schemas: found.context.schemas,
          });
          if (!row)
            return send(
              reply,
              404,
              errorPage(links, 404, `no row of ${at.schema}.${at.table} has the key ${request.query.key}`, at),
            );
          return send(reply, 200, rowPage(links, found.context, at, row));
        } catch (error) {
          return failed(request, reply, links, error, at);
        }
      },
    );

    const failed = (request: FastifyRequest, reply: FastifyReply, links: Links, error: unknown, at: Place) => {
      const status = statusOf(error);
      if (status >= 500) request.log.error({ err: error }, 'data browser page failed');
      return send(reply, status, errorPage(links, status, describeError(error), at));
    };
  };
}
