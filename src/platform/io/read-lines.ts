import type { Readable } from 'node:stream';

/** A line longer than the reader accepts: the input is not the line-oriented text it should be. */
export class LineTooLongError extends Error {
  override name = 'LineTooLongError';
  constructor(
    readonly lineNo: number,
    readonly maxLength: number,
  ) {
    super(`line ${lineNo} is longer than ${maxLength} characters`);
  }
}

/**
 * Splits a byte stream into text lines (LF or CRLF), numbered from 1, holding at most one partial line
 * between chunks; blank lines are counted but not yielded. Pulling lines is what reads the stream, so a slow
 * consumer slows the producer (backpressure) instead of buffering the input.
 * @example for await (const { text, lineNo } of readLines(fs.createReadStream('items.csv'))) { ... }
 */
export async function* readLines(
  input: Readable | AsyncIterable<Buffer | string>,
  options: { maxLineLength?: number } = {},
): AsyncGenerator<{ text: string; lineNo: number }> {
  const maxLineLength = options.maxLineLength ?? 64 * 1024;
  const decoder = new TextDecoder('utf-8');
  let partial = '';
  let lineNo = 0;
  for await (const chunk of input) {
    const text = partial + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    const lines = text.split('\n');
    partial = lines.pop()!;
    // A line that never ends would otherwise be held whole (and re-copied with every chunk).
    if (partial.length > maxLineLength) throw new LineTooLongError(lineNo + lines.length + 1, maxLineLength);
    for (const raw of lines) {
      lineNo++;
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.length > 0) yield { text: line, lineNo };
    }
  }
  const rest = partial + decoder.decode();
  if (rest.length > 0) {
    lineNo++;
    const line = rest.endsWith('\r') ? rest.slice(0, -1) : rest;
    if (line.length > 0) yield { text: line, lineNo };
  }
}
