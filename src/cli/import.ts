import fs from 'node:fs';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import type { Config } from '../config/config.ts';
import { importOrderItems, type ImportResult } from '../contexts/orders/import-order-items.ts';
import { openDatabase } from '../app/database.ts';
import { bucketOfId } from '../platform/sharding/buckets.ts';
import { inBucket } from '../platform/sharding/routing.ts';
import { openOrderShards } from '../contexts/orders/shards.ts';
import { isAppError, type AppError } from '../platform/errors/app-error.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const IMPORT_USAGE =
  'usage: stratum import order-items --order <id> --file <items.csv> [--chunk-size N] [--atomic]';

export const IMPORT_HELP = `${IMPORT_USAGE}

Streams product_id,quantity,price lines (header line optional) into the order's items with COPY, in chunks of
--chunk-size lines (default 1000, 1..1000000), each behind a savepoint: a chunk with a bad row is skipped and
reported while the others are kept; with --atomic one bad row imports nothing. The order's total is updated in
the same transaction. Prints {"imported":n,"rejected":[{fromLine,toLine,reason}]} on stdout.
Exit status: 0 all imported, 1 some chunks rejected or the import failed, 2 bad arguments.
Applies pending migrations first.`;

interface ImportArgs {
  orderId: number;
  file: string;
  size: number;
  chunkSize: number;
  atomic: boolean;
}

/** The arguments, or the reason they are wrong. */
function parseImportArgs(args: string[]): ImportArgs | 'help' | string {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        order: { type: 'string' },
        file: { type: 'string' },
        'chunk-size': { type: 'string' },
        atomic: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return (error as Error).message;
  }
  const { positionals, values } = parsed;
  if (values.help) return 'help';
  if (positionals[0] !== 'order-items' || positionals.length > 1) return 'the one thing to import is order-items';
  if (values.order === undefined) return '--order is required';
  if (!/^[0-9]{1,15}$/.test(values.order) || Number(values.order) < 1)
    return `--order takes a positive order id, got "${values.order}"`;
  if (values.file === undefined) return '--file is required';
  const chunkSize = values['chunk-size'] ?? '1000';
  if (!/^[0-9]{1,7}$/.test(chunkSize) || Number(chunkSize) < 1 || Number(chunkSize) > 1_000_000)
    return `--chunk-size takes 1..1000000, got "${chunkSize}"`;
  let size: number;
  try {
    const stat = fs.statSync(values.file);
    if (!stat.isFile()) return `${values.file} is not a file`;
    size = stat.size;
  } catch (error) {
    return `cannot read ${values.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  return {
    orderId: Number(values.order),
    file: values.file,
    size,
    chunkSize: Number(chunkSize),
    atomic: values.atomic === true,
  };
}

/**
 * `stratum import order-items`: the HTTP import's transaction and function over a file, on the order's
 * shard, with a progress bar (bytes of the file read) on a terminal.
 * @example process.exitCode = await runImport(config, ['order-items', '--order', '7', '--file', 'items.csv'], io);
 */
export async function runImport(config: Config, args: string[], io: Io): Promise<number> {
  const parsed = parseImportArgs(args);
  if (parsed === 'help') {
    io.out(IMPORT_HELP);
    return 0;
  }
  if (typeof parsed === 'string') {
    io.err(`stratum import: ${parsed}`);
    io.err(IMPORT_USAGE);
    return 2;
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  try {
    await database.migrator.up();
    const shards = await openOrderShards(config, {
      catalog: database.sql,
      target: database.target,
      applicationName: database.applicationName,
    });
    const csv = fs.createReadStream(parsed.file);
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            format: 'importing items [{bar}] {percentage}% {lines} lines, {imported} imported {duration_formatted}',
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    bar?.start(parsed.size, 0, { lines: 0, imported: 0 });
    let result: ImportResult;
    try {
      result = await inBucket(
        shards,
        bucketOfId(parsed.orderId),
        { label: 'orders.import', deadlineMs: config.importDeadlineMs, maxAttempts: 1 },
        (tx) =>
          importOrderItems(tx, parsed.orderId, csv, {
            chunkSize: parsed.chunkSize,
            atomic: parsed.atomic,
            onProgress: ({ linesRead, imported }) => bar?.update(csv.bytesRead, { lines: linesRead, imported }),
          }),
        { movingWaitMs: 0 },
      );
      bar?.update(parsed.size);
    } catch (error) {
      if (!isAppError(error)) throw error;
      reportFailure(error, io);
      return 1;
    } finally {
      bar?.stop();
      csv.destroy();
      await shards.close();
    }
    io.out(JSON.stringify(result));
    return result.rejected.length === 0 ? 0 : 1;
  } finally {
    await database.close();
  }
}

/** One line on stderr; an atomic import's rejected chunk also goes to stdout as the (empty) result. */
function reportFailure(error: AppError, io: Io): void {
  if (error.code === 'IMPORT.REJECTED' && error.details)
    io.out(JSON.stringify({ imported: error.details.imported, rejected: error.details.rejected }));
  // A database error's own message ("value too long", "deadlock detected") is what the operator needs.
  const cause = error.code.startsWith('DB.') && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  io.err(`stratum: import failed (${error.code}): ${error.message}${cause}`);
}
