import { createHash } from 'node:crypto';
import type { Db, TxSql } from '../db/connect.ts';
import type { TransactionFn, TransactionOptions } from '../db/transaction.ts';
import { AppError, isAppError } from '../errors/app-error.ts';

/** What a creation answers: stored with its key, replayed for a repeat of the same request. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

export interface IdempotentOutcome extends StoredResponse {
  /** True when the answer is the stored one of an earlier request with this key. */
  replayed: boolean;
}

export interface IdempotencyOptions {
  /** Names the operation: keys are unique per scope (`notes.create`). */
  scope: string;
  key: string;
  /** Hash of what the request asks (method, route, body): the same key with another request is refused. */
  requestHash: string;
  ttlMs: number;
  /** Reads the key outside the write transaction (the pool the write uses). */
  sql: Db;
  transaction: TransactionFn;
  txOptions: TransactionOptions;
  /** How long to keep looking up the key after a commit whose outcome is unknown (a failover in progress). */
  settleMs?: number;
}

const KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;

/** The Idempotency-Key header, validated: 1..200 visible ASCII characters. Undefined when absent. */
export function readIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !KEY_PATTERN.test(value)) {
    throw new AppError('REQUEST.INVALID', 'the Idempotency-Key header must be 1 to 200 visible ASCII characters', {
      details: { field: 'Idempotency-Key' },
    });
  }
  return value;
}

/** A stable hash of a request's meaning: method, route and body (object keys sorted). */
export function requestHash(method: string, route: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${route}\n${canonicalJson(body)}`)
    .digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

interface KeyRow {
  request_hash: string;
  status: number | null;
  body: unknown;
}

async function lookUp(db: Db, scope: string, key: string): Promise<KeyRow | undefined> {
  const [row] = await db<KeyRow[]>`select request_hash, status, body from idempotency.keys
    where scope = ${scope} and key = ${key} and expires_at > now()`;
  return row;
}

function replay(row: KeyRow, options: IdempotencyOptions): IdempotentOutcome {
  if (row.request_hash !== options.requestHash) {
    throw new AppError('IDEMPOTENCY.KEY_REUSED', `Idempotency-Key ${options.key} was used with a different request`, {
      details: { key: options.key },
    });
  }
  return { status: row.status!, body: row.body, replayed: true };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a creation at most once per key: a stored answer is replayed (same status and body); the first request
 * claims the key inside its own transaction and stores its answer there, so the key exists if and only if the
 * write committed. A concurrent duplicate waits on the key's row and then replays. When the commit's outcome is
 * unknown (the connection broke after COMMIT), the key is looked up until the database answers: found, the
 * write committed and its answer is returned; absent, it did not, and the creation runs again.
 * @example const out = await idempotent({ scope: 'notes.create', key, requestHash: h, ... }, async (tx) => ({ status: 201, body: await create(tx) }));
 */
export async function idempotent(
  options: IdempotencyOptions,
  create: (tx: TxSql) => Promise<StoredResponse>,
): Promise<IdempotentOutcome> {
  const { scope, key } = options;
  // Through transaction() so that a lookup cut by a failover runs again within the deadline.
  const existing = await options.transaction(
    { ...options.txOptions, label: `${options.txOptions.label ?? scope}.idempotency-lookup` },
    (tx) => lookUp(tx, scope, key),
  );
  if (existing && existing.status !== null) return replay(existing, options);
  const settleUntil = Date.now() + (options.settleMs ?? 10_000);
  for (;;) {
    try {
      return await options.transaction(options.txOptions, async (tx) => {
        const [claimed] = await tx<{ claimed: boolean }[]>`
          insert into idempotency.keys (scope, key, request_hash, expires_at)
          values (${scope}, ${key}, ${options.requestHash}, now() + make_interval(secs => ${options.ttlMs / 1000}))
          on conflict (scope, key) do update set request_hash = excluded.request_hash, status = null, body = null,
            created_at = now(), expires_at = excluded.expires_at
            where idempotency.keys.expires_at <= now()
          returning true as claimed`;
        if (!claimed) {
          // Another request holds or held the key: its row is committed now (the insert waited for it).
          const row = await lookUp(tx, scope, key);
          if (!row || row.status === null)
            throw new AppError('DB.CONFLICT', `a request with Idempotency-Key ${key} is still running`, {
              details: { key },
            });
          return replay(row, options);
        }
        const response = await create(tx);
        await tx`update idempotency.keys set status = ${response.status}, body = ${tx.json(response.body as never)}
          where scope = ${scope} and key = ${key}`;
        return { ...response, replayed: false };
      });
    } catch (error) {
      if (!isCommitUnknown(error)) throw error;
      // Settle it: look the key up on whatever primary answers now.
      const settled = await settle(options, settleUntil);
      if (settled === 'absent') continue; // not committed: run the creation again, under the same key
      if (settled) return { status: settled.status!, body: settled.body, replayed: false };
      throw error;
    }
  }
}

async function settle(options: IdempotencyOptions, until: number): Promise<KeyRow | 'absent' | undefined> {
  for (let attempt = 0; Date.now() < until; attempt++) {
    try {
      const row = await lookUp(options.sql, options.scope, options.key);
      return row && row.status !== null && row.request_hash === options.requestHash ? row : 'absent';
    } catch {
      await pause(Math.min(100 * 2 ** attempt, 1000));
    }
  }
  return undefined;
}

export function isCommitUnknown(error: unknown): boolean {
  return (
    isAppError(error, 'DB.UNAVAILABLE') &&
    (error.details as { commitOutcome?: string } | undefined)?.commitOutcome === 'unknown'
  );
}

/** Deletes expired keys (run now and then). */
export async function deleteExpiredKeys(db: Db): Promise<number> {
  const rows = await db`delete from idempotency.keys where expires_at <= now()`;
  return rows.count;
}
