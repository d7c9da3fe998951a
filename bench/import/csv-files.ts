import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';

/** One generated set of items, in the two shapes the methods read. */
export interface CsvFiles {
  rows: number;
  /** `product_id,quantity,price` with a header line: what stratum's import (and the INSERT baseline) reads. */
  items: string;
  /** The same rows without the header, each prefixed with the order id: what `psql \copy` reads into four columns. */
  withOrderId: string;
  /** Bytes of `items`. */
  bytes: number;
  /** The order's total after importing every row, e.g. "249887112.50". */
  expectedTotal: string;
}

/**
 * Row `i` (from 1) of every file: a valid item, the same on every run. Prices stay under 100.00 so the total of
 * even 10,000,000 rows fits `total_amount numeric(12,2)`.
 */
export function itemRow(i: number): { productId: number; quantity: number; cents: number } {
  return { productId: 1 + ((i * 7919) % 100_000), quantity: 1 + (i % 9), cents: (i * 37) % 10_000 };
}

const BATCH = 10_000;

/**
 * Writes `rows` generated items to `<dir>/<name>.csv` and `<dir>/<name>-with-order-id.csv` in one pass,
 * batch by batch (the rows are never all in memory).
 */
export async function writeCsvFiles(dir: string, name: string, rows: number, orderId: number): Promise<CsvFiles> {
  const items = path.join(dir, `${name}.csv`);
  const withOrderId = path.join(dir, `${name}-with-order-id.csv`);
  const a = fs.createWriteStream(items);
  const b = fs.createWriteStream(withOrderId);
  let totalCents = 0;
  a.write('product_id,quantity,price\n');
  for (let from = 1; from <= rows; from += BATCH) {
    let plain = '';
    let prefixed = '';
    for (let i = from; i < Math.min(from + BATCH, rows + 1); i++) {
      const { productId, quantity, cents } = itemRow(i);
      const line = `${productId},${quantity},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}\n`;
      plain += line;
      prefixed += `${orderId},${line}`;
      totalCents += quantity * cents;
    }
    const drained: Array<Promise<unknown>> = [];
    if (!a.write(plain)) drained.push(once(a, 'drain'));
    if (!b.write(prefixed)) drained.push(once(b, 'drain'));
    await Promise.all(drained);
  }
  await Promise.all([new Promise((resolve) => a.end(resolve)), new Promise((resolve) => b.end(resolve))]);
  const expectedTotal = `${Math.floor(totalCents / 100)}.${String(totalCents % 100).padStart(2, '0')}`;
  return { rows, items, withOrderId, bytes: fs.statSync(items).size, expectedTotal };
}
