import type { CsvFiles } from './csv-files.ts';

/** One way of getting a generated file's rows into `orders.order_items` for the benchmark's order. */
export interface ImportMethod {
  /** The row label in the report, e.g. `psql \copy`. */
  name: string;
  /** Resolves once every row is committed; rejects if any row is not. */
  run(files: CsvFiles): Promise<void>;
}
