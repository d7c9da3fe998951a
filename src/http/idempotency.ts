import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db, TxSql } from '../platform/db/connect.ts';
import type { TransactionFn, TransactionOptions } from '../platform/db/transaction.ts';
import { idempotent, readIdempotencyKey, requestHash } from '../platform/idempotency/idempotency.ts';

export interface CreationStore {
  /** Where the key is read outside the write (the pool the write's transaction uses). */
  sql: Db;
  transaction: TransactionFn;
  /** How long a key is remembered. */
  ttlMs: number;
}

/**
 * Answers a creation request (status 201): without an Idempotency-Key header, runs `create` in a transaction;
 * with one, at most once per key (see idempotent()): a repeat of the same request gets the stored answer with
 * `Idempotent-Replayed: true`, the same key with another request 422 IDEMPOTENCY.KEY_REUSED.
 * @example return createOnce(request, reply, store, 'accounts.create', { label: 'accounts.create' }, (tx) => insertAccount(tx, name));
 */
export async function createOnce(
  request: FastifyRequest,
  reply: FastifyReply,
  store: CreationStore,
  scope: string,
  txOptions: TransactionOptions,
  create: (tx: TxSql) => Promise<unknown>,
): Promise<FastifyReply> {
  const key = readIdempotencyKey(request.headers['idempotency-key']);
  if (key === undefined) return reply.code(201).send(await store.transaction(txOptions, create));
  const outcome = await idempotent(
    {
      scope,
      key,
      requestHash: requestHash(request.method, request.routeOptions.url ?? request.url, request.body),
      ttlMs: store.ttlMs,
      sql: store.sql,
      transaction: store.transaction,
      txOptions,
    },
    async (tx) => ({ status: 201, body: JSON.parse(JSON.stringify(await create(tx))) }),
  );
  if (outcome.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(outcome.status).send(outcome.body);
}
