import fs from 'node:fs';
import type { Sql } from '../../src/platform/db/connect.ts';
import { readLines } from '../../src/platform/io/read-lines.ts';
import { BENCH_ORDER_ID } from './tables.ts';
import type { ImportMethod } from './method.ts';

/**
 * What an application would write without COPY: the file read line by line in this process, and one
 * `insert … values (…), (…), …` of `batchRows` rows (4 parameters each, a prepared statement) after another,
 * awaited in turn, all in one transaction through postgres.js.
 */
export function multiRowInserts(sql: Sql, batchRows: number): ImportMethod {
  return {
    name: `multi-row INSERTs of ${batchRows.toLocaleString('en-US')} rows, one transaction (postgres.js)`,
    async run(files) {
      await sql.begin(async (tx) => {
        let batch: string[][] = [];
        const insert = async () => {
          await tx`insert into orders.order_items (order_id, product_id, quantity, price) values ${tx(batch as never)}`;
          batch = [];
        };
        for await (const { text, lineNo } of readLines(fs.createReadStream(files.items))) {
          if (lineNo === 1 && text.startsWith('product_id')) continue;
          const [productId, quantity, price] = text.split(',');
          batch.push([String(BENCH_ORDER_ID), productId!, quantity!, price!]);
          if (batch.length === batchRows) await insert();
        }
        if (batch.length > 0) await insert();
      });
    },
  };
}
