import type { Readable } from 'node:stream';
import type { TxSql } from '../../platform/db/connect.ts';
import { CopyChunkRejected, copyInChunks, type RejectedChunk } from '../../platform/db/copy-chunks.ts';
import { AppError } from '../../platform/errors/app-error.ts';
import { LineTooLongError, readLines } from '../../platform/io/read-lines.ts';
import { publish } from '../../platform/context/events.ts';
import { OrderItemsImported } from './events.ts';
import { orderNotFound } from './order.ts';
import { COPY_ORDER_ITEMS, lockOrder, recomputeTotal } from './orders-repository.ts';

export interface ImportResult {
  imported: number;
  rejected: RejectedChunk[];
}

export interface ImportOptions {
  chunkSize: number;
  atomic: boolean;
  onProgress?: (progress: { linesRead: number; imported: number }) => void;
}

const HEADER = /^\s*"?product_id"?\s*,\s*"?quantity"?\s*,\s*"?price"?\s*$/i;

async function* withoutHeader(lines: AsyncIterable<{ text: string; lineNo: number }>) {
  for await (const line of lines) {
    if (line.lineNo === 1 && HEADER.test(line.text)) continue;
    yield line;
  }
}

/**
 * Streams `product_id,quantity,price` CSV into an order's items with COPY, in savepoint-guarded chunks (a bad
 * chunk is skipped and reported; with `atomic`, the whole import fails instead), then recomputes the order's
 * total in the same transaction. The order row is locked for the whole import. The caller owns the transaction.
 */
export async function importOrderItems(
  tx: TxSql,
  orderId: number,
  csv: Readable,
  options: ImportOptions,
): Promise<ImportResult> {
  const order = await lockOrder(tx, orderId);
  if (!order) throw orderNotFound(orderId);
  if (order.status === 'completed' || order.status === 'cancelled') {
    throw new AppError(
      'ORDER.INVALID_TRANSITION',
      `order ${orderId} is ${order.status}; its items can no longer change`,
      { details: { id: orderId, status: order.status } },
    );
  }
  const prefix = `${orderId},`;
  let result: ImportResult;
  try {
    result = await copyInChunks(tx, {
      copySql: COPY_ORDER_ITEMS,
      lines: withoutHeader(readLines(csv)),
      chunkSize: options.chunkSize,
      atomic: options.atomic,
      toRow: (line) => prefix + line,
      onChunk: options.onProgress,
    });
  } catch (error) {
    if (error instanceof LineTooLongError) {
      throw new AppError('REQUEST.INVALID', `nothing was imported: ${error.message}`, {
        cause: error,
        details: { line: error.lineNo },
      });
    }
    if (error instanceof CopyChunkRejected) {
      throw new AppError('IMPORT.REJECTED', `nothing was imported: ${error.message}`, {
        cause: error,
        details: { imported: 0, rejected: [error.chunk] },
      });
    }
    throw error;
  }
  await recomputeTotal(tx, orderId);
  await publish(tx, OrderItemsImported, String(order.customer_id), {
    id: orderId,
    imported: result.imported,
    rejected: result.rejected.length,
  });
  return result;
}
