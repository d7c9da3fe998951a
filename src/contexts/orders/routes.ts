import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AppError } from '../../platform/errors/app-error.ts';
import { readIdempotencyKey, requestHash } from '../../platform/idempotency/idempotency.ts';
import { decodeCursor, encodeCursor, isIdCursor } from '../../platform/pagination/cursor.ts';
import { ProblemSchema } from '../../http/schemas.ts';
import { CheckoutFailed, checkoutError } from './checkout-saga.ts';
import { orderNotFound, type Order } from './order.ts';
import type { OrdersService } from './orders-service.ts';
import {
  CheckoutBody,
  CheckoutSchema,
  ConsistencyQuery,
  ImportQuery,
  ImportResultSchema,
  ListQuery,
  MovedSchema,
  NewOrderBody,
  OrderIdParams,
  OrderPageSchema,
  OrderSchema,
  PatchBody,
  ProductParams,
  SagaIdParams,
  SagaStatusSchema,
  StatsSchema,
  StockBody,
  TransferBody,
} from './schemas.ts';

/** The read cache as orders uses it (the platform cache satisfies it). */
export interface OrderCache {
  getOrLoad(key: string, load: (signal: AbortSignal) => Promise<Order | undefined>): Promise<Order | undefined>;
  invalidate(key: string): Promise<void>;
}

export interface OrdersDeps {
  orders: OrdersService;
  cache: OrderCache;
  /** How long an Idempotency-Key of a creation is remembered. */
  idempotencyTtlMs: number;
  /** The deadline of an item import's request (it streams through COPY for as long as the upload lasts). */
  importDeadlineMs: number;
}

export function orderKey(id: number): string {
  return `order:${id}`;
}

function parseOrderId(raw: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id < 1)
    throw new AppError('REQUEST.INVALID', 'params.id must be a positive order id', { details: { field: 'id' } });
  return id;
}

const errors = { 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema, 503: ProblemSchema };

/** POST/GET/PATCH/DELETE /orders, GET /orders (keyset pages), GET /orders/stats, POST /orders/:id/items/import */
export function ordersRoutes(deps: OrdersDeps) {
  return (root: FastifyInstance): void => {
    const app = root.withTypeProvider<TypeBoxTypeProvider>();
    // CSV bodies stay streams: they go to COPY chunk by chunk, never whole into memory.
    app.addContentTypeParser('text/csv', (_request, payload, done) => done(null, payload));

    app.post(
      '/orders',
      {
        schema: {
          tags: ['orders'],
          summary: 'Create an order with its items (one round trip; the total is computed by PostgreSQL)',
          body: NewOrderBody,
          response: { 201: OrderSchema, ...errors },
        },
      },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key']);
        if (key === undefined) return reply.code(201).send(await deps.orders.create(request.body));
        const outcome = await deps.orders.createOnce(request.body, {
          key,
          requestHash: requestHash('POST', '/orders', request.body),
          ttlMs: deps.idempotencyTtlMs,
        });
        if (outcome.replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(outcome.status).send(outcome.body as Order);
      },
    );

    app.get(
      '/orders/stats',
      {
        schema: {
          tags: ['orders'],
          summary: 'Number of orders by status, summed over every shard (asked at once)',
          querystring: ConsistencyQuery,
          response: { 200: StatsSchema, ...errors },
        },
      },
      async (request) => deps.orders.stats(request.query.consistency ?? 'strict'),
    );

    app.get(
      '/orders/:id',
      {
        schema: {
          tags: ['orders'],
          summary: 'An order with its items (one JSON aggregate)',
          params: OrderIdParams,
          response: { 200: OrderSchema, 301: MovedSchema, ...errors },
        },
      },
      async (request, reply) => {
        const id = parseOrderId(request.params.id);
        const order = await deps.cache.getOrLoad(orderKey(id), async () => {
          const found = await deps.orders.get(id);
          return found && 'order' in found ? found.order : undefined;
        });
        if (order) return order;
        // Not cached as absent: an order transferred to another customer answers with where it went.
        const found = await deps.orders.get(id);
        if (found && 'movedTo' in found) {
          return reply
            .code(301)
            .header('location', `/orders/${found.movedTo}`)
            .type('application/problem+json')
            .send({
              type: 'urn:stratum:error:ORDER.MOVED',
              title: 'Moved Permanently',
              status: 301,
              code: 'ORDER.MOVED',
              detail: `order ${id} was transferred to another customer; it is now order ${found.movedTo}`,
              movedTo: found.movedTo,
            });
        }
        throw orderNotFound(id);
      },
    );

    app.patch(
      '/orders/:id',
      {
        schema: {
          tags: ['orders'],
          summary: 'Change the status: pending→processing→completed, pending|processing→cancelled',
          params: OrderIdParams,
          body: PatchBody,
          response: { 200: OrderSchema, ...errors },
        },
      },
      async (request) => {
        const id = parseOrderId(request.params.id);
        const to = request.body.status;
        const result = await deps.orders.transition(id, to);
        if (result.kind === 'missing') throw orderNotFound(id);
        if (result.kind === 'refused') {
          throw new AppError('ORDER.INVALID_TRANSITION', `order ${id} is ${result.current}; it cannot become ${to}`, {
            details: { id, from: result.current, to },
          });
        }
        await deps.cache.invalidate(orderKey(id));
        return result.order;
      },
    );

    app.delete(
      '/orders/:id',
      {
        schema: { tags: ['orders'], params: OrderIdParams, response: { 204: Type.Null(), ...errors } },
      },
      async (request, reply) => {
        const id = parseOrderId(request.params.id);
        const deleted = await deps.orders.remove(id);
        if (!deleted) throw orderNotFound(id);
        await deps.cache.invalidate(orderKey(id));
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/orders',
      {
        schema: {
          tags: ['orders'],
          summary:
            'Orders newest first, keyset pages; without customerId every shard is asked at once and the pages merged',
          querystring: ListQuery,
          response: { 200: OrderPageSchema, ...errors },
        },
      },
      async (request) => {
        const q = request.query;
        const limit = q.limit === undefined ? 50 : Number(q.limit);
        if (limit < 1 || limit > 500)
          throw new AppError('REQUEST.INVALID', 'querystring.limit must be between 1 and 500', {
            details: { field: 'limit' },
          });
        const { items, missingShards, lastId } = await deps.orders.list({
          customerId: q.customerId === undefined ? undefined : Number(q.customerId),
          status: q.status,
          beforeId: q.cursor ? decodeCursor(q.cursor, isIdCursor).id : undefined,
          limit,
          consistency: q.consistency ?? 'strict',
        });
        return { items, nextCursor: lastId === undefined ? null : encodeCursor({ id: lastId }), missingShards };
      },
    );

    app.post(
      '/orders/:id/transfer',
      {
        schema: {
          tags: ['orders'],
          summary:
            'Move an order and its items to another customer (two-phase commit when the shards differ); the order gets a new id',
          params: OrderIdParams,
          body: TransferBody,
          response: { 200: OrderSchema, ...errors },
        },
      },
      async (request) => {
        const id = parseOrderId(request.params.id);
        const order = await deps.orders.transfer(id, request.body.toCustomerId);
        await deps.cache.invalidate(orderKey(id));
        return order;
      },
    );

    app.get(
      '/orders/checkout/:sagaId',
      {
        schema: {
          tags: ['orders'],
          summary:
            'Where a checkout saga is (one answered SAGA.PENDING goes on to its end): running, compensating, completed or compensated',
          params: SagaIdParams,
          response: { 200: SagaStatusSchema, ...errors },
        },
      },
      async (request) => deps.orders.checkoutStatus(request.params.sagaId),
    );

    app.post(
      '/orders/checkout',
      {
        schema: {
          tags: ['orders'],
          summary:
            'Checkout saga: create order, reserve stock, charge payment, mark processing; a failed step compensates the others',
          body: CheckoutBody,
          response: { 201: CheckoutSchema, 402: ProblemSchema, ...errors },
        },
      },
      async (request, reply) => {
        try {
          return reply.code(201).send(await deps.orders.checkout(request.body));
        } catch (error) {
          if (error instanceof CheckoutFailed) throw checkoutError(error);
          throw error;
        }
      },
    );

    app.put(
      '/inventory/:productId',
      {
        schema: {
          tags: ['orders'],
          summary: "Set a product's stock (on every shard: each stocks its own customers)",
          params: ProductParams,
          body: StockBody,
          response: { 204: Type.Null(), ...errors },
        },
      },
      async (request, reply) => {
        const productId = Number(request.params.productId);
        if (!Number.isSafeInteger(productId) || productId < 1)
          throw new AppError('REQUEST.INVALID', 'params.productId must be a positive id', {
            details: { field: 'productId' },
          });
        await deps.orders.setStock(productId, request.body.available);
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/orders/:id/items/import',
      {
        config: { deadlineMs: deps.importDeadlineMs },
        schema: {
          tags: ['orders'],
          summary: 'Import items from CSV (product_id,quantity,price) through COPY, in savepoint-guarded chunks',
          consumes: ['text/csv'],
          params: OrderIdParams,
          querystring: ImportQuery,
          response: { 200: ImportResultSchema, ...errors },
        },
      },
      async (request, reply) => {
        const id = parseOrderId(request.params.id);
        const chunkSize = request.query.chunkSize === undefined ? 1000 : Number(request.query.chunkSize);
        if (chunkSize < 1 || chunkSize > 1_000_000)
          throw new AppError('REQUEST.INVALID', 'querystring.chunkSize must be between 1 and 1000000', {
            details: { field: 'chunkSize' },
          });
        if (!request.headers['content-type']?.startsWith('text/csv')) {
          return reply.code(415).type('application/problem+json').send({
            type: 'urn:stratum:error:REQUEST.UNSUPPORTED_MEDIA_TYPE',
            title: 'Unsupported Media Type',
            status: 415,
            code: 'REQUEST.UNSUPPORTED_MEDIA_TYPE',
            detail: 'send the items as text/csv',
          });
        }
        const body = request.body as Readable | undefined;
        if (!body || typeof (body as Readable).pipe !== 'function')
          throw new AppError('REQUEST.INVALID', 'the body must be CSV lines: product_id,quantity,price');
        // A client that goes away mid-upload errors the request stream; remember it to answer for what it is.
        let cutOff = false;
        const onCut = () => {
          cutOff = true;
        };
        request.raw.once('aborted', onCut);
        request.raw.once('error', onCut);
        let result;
        try {
          result = await deps.orders.importItems(id, body, { chunkSize, atomic: request.query.atomic === 'true' });
        } catch (error) {
          // A client that went away mid-upload is not a database failure: nothing was committed, say so plainly.
          if (cutOff) {
            throw new AppError('REQUEST.ABORTED', 'the upload ended before its last byte; nothing was imported', {
              cause: error,
            });
          }
          throw error;
        }
        await deps.cache.invalidate(orderKey(id));
        return result;
      },
    );
  };
}
