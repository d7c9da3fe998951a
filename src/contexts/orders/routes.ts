import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Sql } from '../../platform/db/connect.ts';
import type { TransactionFn } from '../../platform/db/transaction.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import { addToOutbox } from '../../platform/messaging/outbox.ts';
import { decodeCursor, encodeCursor, isIdCursor } from '../../platform/pagination/cursor.ts';
import { ProblemSchema } from '../../http/schemas.ts';
import { importOrderItems } from './import-order-items.ts';
import { statusesLeadingTo, type Order } from './order.ts';
import { deleteOrder, findOrder, insertOrderWithItems, listOrders, orderStats, transitionOrder } from './orders-repository.ts';
import { ImportQuery, ListQuery, NewOrderBody, OrderIdParams, OrderSchema, PatchBody } from './schemas.ts';

/** The read cache as orders uses it (the platform cache satisfies it). */
export interface OrderCache {
  getOrLoad(key: string, load: (signal: AbortSignal) => Promise<Order | undefined>): Promise<Order | undefined>;
  invalidate(key: string): Promise<void>;
}

export interface OrdersDeps {
  sql: Sql;
  transaction: TransactionFn;
  cache: OrderCache;
  /** Deadline of an import transaction (COPY of a large file takes longer than a request's default). */
  importDeadlineMs: number;
}

export function orderKey(id: number): string {
  return `order:${id}`;
}

function parseOrderId(raw: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id < 1) throw new AppError('REQUEST.INVALID', 'params.id must be a positive order id', { details: { field: 'id' } });
  return id;
}

const notFound = (id: number) => new AppError('ORDER.NOT_FOUND', `order ${id} does not exist`, { details: { id } });
const errors = { 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema, 503: ProblemSchema };
const RejectedSchema = Type.Object({ fromLine: Type.Integer(), toLine: Type.Integer(), reason: Type.String() });

/** POST/GET/PATCH/DELETE /orders, GET /orders (keyset pages), GET /orders/stats, POST /orders/:id/items/import */
export function ordersRoutes(deps: OrdersDeps) {
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    // CSV bodies stay streams: they go to COPY chunk by chunk, never whole into memory.
    app.addContentTypeParser('text/csv', (_request, payload, done) => done(null, payload));

    app.post('/orders', {
      schema: { tags: ['orders'], summary: 'Create an order with its items (one round trip; the total is computed by PostgreSQL)', body: NewOrderBody, response: { 201: OrderSchema, ...errors } },
    }, async (request, reply) => {
      const order = await deps.transaction({ label: 'orders.create' }, async (tx) => {
        const created = await insertOrderWithItems(tx, request.body);
        await addToOutbox(tx, { type: 'order.created', key: String(created.customerId), payload: { id: created.id, customerId: created.customerId, totalAmount: created.totalAmount } });
        return created;
      });
      return reply.code(201).send(order);
    });

    app.get('/orders/stats', {
      schema: { tags: ['orders'], summary: 'Number of orders by status', response: { 200: Type.Object({ byStatus: Type.Record(Type.String(), Type.Integer()), total: Type.Integer() }) } },
    }, async () => orderStats(deps.sql));

    app.get('/orders/:id', {
      schema: { tags: ['orders'], summary: 'An order with its items (one JSON aggregate)', params: OrderIdParams, response: { 200: OrderSchema, ...errors } },
    }, async (request) => {
      const id = parseOrderId(request.params.id);
      const order = await deps.cache.getOrLoad(orderKey(id), () => findOrder(deps.sql, id));
      if (!order) throw notFound(id);
      return order;
    });

    app.patch('/orders/:id', {
      schema: { tags: ['orders'], summary: 'Change the status: pending→processing→completed, pending|processing→cancelled', params: OrderIdParams, body: PatchBody, response: { 200: OrderSchema, ...errors } },
    }, async (request) => {
      const id = parseOrderId(request.params.id);
      const to = request.body.status;
      const result = await deps.transaction({ label: 'orders.transition' }, async (tx) => {
        const outcome = await transitionOrder(tx, id, statusesLeadingTo(to), to);
        if (outcome.kind === 'changed') {
          await addToOutbox(tx, { type: 'order.status_changed', key: String(outcome.order.customerId), payload: { id, from: outcome.from, to } });
        }
        return outcome;
      });
      if (result.kind === 'missing') throw notFound(id);
      if (result.kind === 'refused') {
        throw new AppError('ORDER.INVALID_TRANSITION', `order ${id} is ${result.current}; it cannot become ${to}`, { details: { id, from: result.current, to } });
      }
      await deps.cache.invalidate(orderKey(id));
      return result.order;
    });

    app.delete('/orders/:id', {
      schema: { tags: ['orders'], params: OrderIdParams, response: { 204: Type.Null(), ...errors } },
    }, async (request, reply) => {
      const id = parseOrderId(request.params.id);
      const deleted = await deps.transaction({ label: 'orders.delete' }, (tx) => deleteOrder(tx, id));
      if (!deleted) throw notFound(id);
      await deps.cache.invalidate(orderKey(id));
      return reply.code(204).send(null);
    });

    app.get('/orders', {
      schema: { tags: ['orders'], summary: 'Orders newest first, keyset pages', querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(OrderSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors } },
    }, async (request) => {
      const q = request.query;
      const limit = q.limit === undefined ? 50 : Number(q.limit);
      if (limit < 1 || limit > 500) throw new AppError('REQUEST.INVALID', 'querystring.limit must be between 1 and 500', { details: { field: 'limit' } });
      const items = await listOrders(deps.sql, {
        customerId: q.customerId === undefined ? undefined : Number(q.customerId),
        status: q.status,
        beforeId: q.cursor ? decodeCursor(q.cursor, isIdCursor).id : undefined,
        limit,
      });
      const last = items.at(-1);
      return { items, nextCursor: items.length === limit && last ? encodeCursor({ id: last.id }) : null };
    });

    app.post('/orders/:id/items/import', {
      schema: {
        tags: ['orders'], summary: 'Import items from CSV (product_id,quantity,price) through COPY, in savepoint-guarded chunks',
        consumes: ['text/csv'], params: OrderIdParams, querystring: ImportQuery,
        response: { 200: Type.Object({ imported: Type.Integer(), rejected: Type.Array(RejectedSchema) }), ...errors },
      },
    }, async (request, reply) => {
      const id = parseOrderId(request.params.id);
      const chunkSize = request.query.chunkSize === undefined ? 1000 : Number(request.query.chunkSize);
      if (chunkSize < 1 || chunkSize > 1_000_000) throw new AppError('REQUEST.INVALID', 'querystring.chunkSize must be between 1 and 1000000', { details: { field: 'chunkSize' } });
      if (!request.headers['content-type']?.startsWith('text/csv')) {
        return reply.code(415).type('application/problem+json').send({ type: 'urn:stratum:error:REQUEST.UNSUPPORTED_MEDIA_TYPE', title: 'Unsupported Media Type', status: 415, code: 'REQUEST.UNSUPPORTED_MEDIA_TYPE', detail: 'send the items as text/csv' });
      }
      const body = request.body as Readable | undefined;
      if (!body || typeof (body as Readable).pipe !== 'function') throw new AppError('REQUEST.INVALID', 'the body must be CSV lines: product_id,quantity,price');
      // A client that goes away mid-upload errors the request stream; remember it to answer for what it is.
      let cutOff = false;
      const onCut = () => { cutOff = true; };
      request.raw.once('aborted', onCut);
      request.raw.once('error', onCut);
      let result;
      try {
        result = await deps.transaction({ label: 'orders.import', deadlineMs: deps.importDeadlineMs, maxAttempts: 1 },
          (tx) => importOrderItems(tx, id, body, { chunkSize, atomic: request.query.atomic === 'true' }));
      } catch (error) {
        // A client that went away mid-upload is not a database failure: nothing was committed, say so plainly.
        if (cutOff) {
          throw new AppError('REQUEST.ABORTED', 'the upload ended before its last byte; nothing was imported', { cause: error });
        }
        throw error;
      }
      await deps.cache.invalidate(orderKey(id));
      return result;
    });
  };
}

