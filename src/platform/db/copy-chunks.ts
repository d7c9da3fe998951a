import type { Writable } from 'node:stream';
import type { TxSql } from './connect.ts';

/** A chunk that PostgreSQL refused: its lines (1-based, as in the input) and why. */
export interface RejectedChunk {
  fromLine: number;
  toLine: number;
  reason: string;
}

export interface CopyChunksOptions {
  /** `copy <table> (<columns>) from stdin with (format csv)`; written by code, never from input. */
  copySql: string;
  /** Text lines without their line break, numbered from 1. */
  lines: AsyncIterable<{ text: string; lineNo: number }>;
  chunkSize: number;
  /** All-or-nothing: the first bad chunk fails the whole copy instead of being skipped. */
  atomic: boolean;
  /** Turns an input line into the CSV row COPY receives (e.g. prefixing a parent id). */
  toRow: (line: string) => string;
  onChunk?: (progress: { linesRead: number; imported: number }) => void;
}

export interface CopyChunksResult {
  imported: number;
  rejected: RejectedChunk[];
}

/** Thrown in atomic mode: the chunk that failed, the transaction must roll back. */
export class CopyChunkRejected extends Error {
  override name = 'CopyChunkRejected';
  constructor(
    readonly chunk: RejectedChunk,
    options?: { cause?: unknown },
  ) {
    super(`lines ${chunk.fromLine}-${chunk.toLine}: ${chunk.reason}`, options);
  }
}

/** About this many rows go to PostgreSQL in one COPY behind one savepoint while every row is good. */
const GROUP_ROWS = 10_000;

interface Chunk {
  rows: string[];
  lineNos: number[];
}

/**
 * Streams lines into PostgreSQL with COPY FROM STDIN in chunks of `chunkSize` lines: a chunk PostgreSQL
 * rejects (bad number, failed check, wrong column count) is rolled back and reported while the others stay.
 * While rows are good, consecutive chunks travel together in one COPY behind one savepoint (about 10,000 rows:
 * fewer round trips and subtransactions); when such a group fails, it is rolled back and copied again chunk by
 * chunk, each behind its own savepoint, to find and report exactly the bad chunks. Memory holds one group at a
 * time, whatever the input's size. The caller owns the transaction.
 * @example
 * const result = await copyInChunks(tx, { copySql: 'copy t (a, b) from stdin with (format csv)', lines, chunkSize: 1000, atomic: false, toRow: (l) => l });
 */
export async function copyInChunks(tx: TxSql, options: CopyChunksOptions): Promise<CopyChunksResult> {
  const result: CopyChunksResult = { imported: 0, rejected: [] };
  const chunksPerGroup = Math.max(1, Math.floor(GROUP_ROWS / options.chunkSize));
  let group: Chunk[] = [];
  let current: Chunk = { rows: [], lineNos: [] };

  const rejection = (chunk: Chunk, error: unknown): RejectedChunk => ({
    fromLine: chunk.lineNos[0]!,
    toLine: chunk.lineNos.at(-1)!,
    reason: describeCopyError(error, chunk.lineNos),
  });

  const copyChunks = (chunks: Chunk[]) =>
    copyOnce(tx, options.copySql, chunks.map((c) => c.rows.join('\n')).join('\n') + '\n');

  const flushGroup = async () => {
    if (group.length === 0) return;
    const chunks = group;
    group = [];
    const count = chunks.reduce((n, c) => n + c.rows.length, 0);
    if (options.atomic) {
      try {
        await copyChunks(chunks);
      } catch (error) {
        const lineNos = chunks.flatMap((c) => c.lineNos);
        const failed = failedLine(error, lineNos);
        const chunk = chunks.find((c) => failed !== undefined && c.lineNos.includes(failed)) ?? chunks[0]!;
        throw new CopyChunkRejected(
          { ...rejection(chunk, error), reason: describeCopyError(error, lineNos) },
          { cause: error },
        );
      }
      result.imported += count;
    } else {
      await tx.unsafe('savepoint stratum_copy_group');
      try {
        await copyChunks(chunks);
        await tx.unsafe('release savepoint stratum_copy_group');
        result.imported += count;
      } catch {
        await tx.unsafe('rollback to savepoint stratum_copy_group');
        for (const chunk of chunks) {
          await tx.unsafe('savepoint stratum_copy_chunk');
          try {
            await copyChunks([chunk]);
            await tx.unsafe('release savepoint stratum_copy_chunk');
            result.imported += chunk.rows.length;
          } catch (error) {
            await tx.unsafe('rollback to savepoint stratum_copy_chunk');
            result.rejected.push(rejection(chunk, error));
          }
        }
        await tx.unsafe('release savepoint stratum_copy_group');
      }
    }
    options.onChunk?.({ linesRead: chunks.at(-1)!.lineNos.at(-1)!, imported: result.imported });
  };

  for await (const { text, lineNo } of options.lines) {
    current.rows.push(options.toRow(text));
    current.lineNos.push(lineNo);
    if (current.rows.length >= options.chunkSize) {
      group.push(current);
      current = { rows: [], lineNos: [] };
      if (group.length >= chunksPerGroup) await flushGroup();
    }
  }
  if (current.rows.length > 0) group.push(current);
  await flushGroup();
  return result;
}

/**
 * One COPY FROM STDIN of `data`. postgres.js resolves the query with the stream as soon as COPY starts, so a
 * row the server rejects after the last write reaches neither the stream nor the (settled) query promise, and
 * the stream's 'finish' never comes. The query's reject hook still fires: listen there.
 */
async function copyOnce(tx: TxSql, copySql: string, data: string): Promise<void> {
  const query = tx.unsafe(copySql) as unknown as { reject: (error: unknown) => void; writable(): Promise<Writable> };
  let fail!: (error: unknown) => void;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failed.catch(() => {});
  const reject = query.reject;
  query.reject = (error: unknown) => {
    fail(error);
    reject(error);
  };
  const writable = await query.writable();
  const finished = new Promise<void>((resolve, rejectFinish) => {
    writable.once('error', rejectFinish);
    writable.once('finish', resolve);
    writable.end(data);
  });
  await Promise.race([finished, failed]);
}

/** The input line a COPY error is about ("COPY t, line 7, ..." counts the lines of that COPY). */
function failedLine(error: unknown, lineNos: number[]): number | undefined {
  const where = /line (\d+)/.exec((error as { where?: string }).where ?? '');
  return where ? lineNos[Number(where[1]) - 1] : undefined;
}

/** PostgreSQL says "COPY t, line 7, column x: ..." about the COPY; name the input line instead. */
function describeCopyError(error: unknown, lineNos: number[]): string {
  const e = error as { message?: string; where?: string; detail?: string };
  const line = failedLine(error, lineNos);
  const column = /column (\w+)/.exec(e.where ?? '')?.[1];
  return [line ? `line ${line}` : undefined, column ? `column ${column}` : undefined, e.message ?? String(error)]
    .filter(Boolean)
    .join(': ');
}
