import { beginSpan, failSpan, SpanKind, tracingActive } from '../observability/tracing.ts';

/** What a span says of a statement: its operation and first table, from the text only (never its values). */
interface Summary {
  operation: string;
  table: string | undefined;
}

const summaries = new WeakMap<object, Summary>();
const textSummaries = new Map<string, Summary>();

/** The part of postgres.js's Query this needs: its text, and the hooks it calls to send and to settle. */
interface TracedQuery {
  strings?: unknown;
  executed?: boolean;
  handle?: () => unknown;
  resolve?: (value: unknown) => unknown;
  reject?: (error: unknown) => unknown;
}

/**
 * Gives a statement a span (`SELECT app.items`, kind client, `db.*` attributes, no parameter values) from
 * when it is sent until it settles, parented by the span current when it is sent (its transaction). A statement
 * used only as a fragment of another is never sent and gets none. Costs nothing while tracing is off.
 */
export function traceStatement(query: unknown): void {
  if (!tracingActive()) return;
  const q = query as TracedQuery;
  const handle = q.handle;
  if (typeof handle !== 'function' || q.executed) return;
  q.handle = function (this: TracedQuery, ...args: unknown[]) {
    if (!this.executed) {
      const summary = summarize(this.strings);
      const { span } = beginSpan(summary.table ? `${summary.operation} ${summary.table}` : summary.operation, {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system.name': 'postgresql',
          'db.operation.name': summary.operation,
          ...(summary.table ? { 'db.collection.name': summary.table } : {}),
        },
      });
      const resolve = this.resolve;
      const reject = this.reject;
      if (resolve && reject) {
        this.resolve = (value) => {
          span.end();
          return resolve(value);
        };
        this.reject = (error) => {
          failSpan(span, error);
          span.end();
          return reject(error);
        };
      } else span.end();
    }
    return (handle as (...a: unknown[]) => unknown).apply(this, args);
  };
}

const OPERATION = /^\s*(?:--[^\n]*\n\s*)*([a-z]+)/i;
const TABLE = /\b(?:from|into|update|join)\s+((?:"?[a-z_][\w$]*"?\.)?"?[a-z_][\w$]*"?)/i;

function summarize(strings: unknown): Summary {
  if (typeof strings === 'object' && strings !== null) {
    const cached = summaries.get(strings);
    if (cached) return cached;
    const summary = fromText(Array.isArray(strings) ? strings.join('?') : String(strings));
    summaries.set(strings, summary);
    return summary;
  }
  const text = String(strings ?? '');
  let summary = textSummaries.get(text);
  if (!summary) {
    summary = fromText(text);
    // Texts made at run time (sql.unsafe) could be endless: keep the first thousand.
    if (textSummaries.size < 1000) textSummaries.set(text, summary);
  }
  return summary;
}

function fromText(text: string): Summary {
  const operation = (OPERATION.exec(text)?.[1] ?? 'statement').toUpperCase();
  // `with …` reads the main statement's verb after the CTEs; its first table is still a fair summary.
  const table = TABLE.exec(text)?.[1]?.replaceAll('"', '');
  return { operation, table };
}
