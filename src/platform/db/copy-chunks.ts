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
  constructor(readonly chunk: RejectedChunk, options?: { cause?: unknown }) {
    super(`lines ${chunk.fromLine}-${chunk.toLine}: ${chunk.reason}`, options);
  }
}

/**
 * Streams lines into PostgreSQL with COPY FROM STDIN, one COPY per chunk of `chunkSize` lines, each behind a
 * savepoint: a chunk PostgreSQL rejects (bad number, failed check, wrong column count) is rolled back and
 * reported while the others stay. Memory holds one chunk at a time, whatever the input's size. The caller owns
 * the transaction (and commits, or not, what was copied).
 * @example
 * const result = await copyInChunks(tx, { copySql: 'copy t (a, b) from stdin with (format csv)', lines, chunkSize: 1000, atomic: false, toRow: (l) => l });
 */
export async function copyInChunks(tx: TxSql, options: CopyChunksOptions): Promise<CopyChunksResult> {
  const result: CopyChunksResult = { imported: 0, rejected: [] };
  let rows: string[] = [];
  let lineNos: number[] = [];

  const flush = async () => {
    if (rows.length === 0) return;
    const chunk = { fromLine: lineNos[0]!, toLine: lineNos.at(-1)! };
    const data = rows.join('\n') + '\n';
    const count = rows.length;
    const numbers = lineNos;
    rows = [];
    lineNos = [];
    try {
      if (options.atomic) await copyOnce(tx, options.copySql, data);
      else await tx.savepoint((sp) => copyOnce(sp, options.copySql, data));
      result.imported += count;
    } catch (error) {
      const rejected = { ...chunk, reason: describeCopyError(error, numbers) };
      if (options.atomic) throw new CopyChunkRejected(rejected, { cause: error });
      result.rejected.push(rejected);
    }
    options.onChunk?.({ linesRead: chunk.toLine, imported: result.imported });
  };

  for await (const { text, lineNo } of options.lines) {
    rows.push(options.toRow(text));
    lineNos.push(lineNo);
    if (rows.length >= options.chunkSize) await flush();
  }
  await flush();
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
  const failed = new Promise<never>((_, reject) => { fail = reject; });
  failed.catch(() => {});
  const reject = query.reject;
  query.reject = (error: unknown) => { fail(error); reject(error); };
  const writable = await query.writable();
  const finished = new Promise<void>((resolve, rejectFinish) => {
    writable.once('error', rejectFinish);
    writable.once('finish', resolve);
    writable.end(data);
  });
  await Promise.race([finished, failed]);
}

/** PostgreSQL says "COPY t, line 7, column x: ..." about the chunk; name the input line instead. */
function describeCopyError(error: unknown, lineNos: number[]): string {
  const e = error as { message?: string; where?: string; detail?: string };
  const where = /line (\d+)/.exec(e.where ?? '');
  const line = where ? lineNos[Number(where[1]) - 1] : undefined;
  const column = /column (\w+)/.exec(e.where ?? '')?.[1];
  return [line ? `line ${line}` : undefined, column ? `column ${column}` : undefined, e.message ?? String(error)].filter(Boolean).join(': ');
}
