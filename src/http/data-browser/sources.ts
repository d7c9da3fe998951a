import type { Sql, TxSql } from '../../platform/db/connect.ts';
import { isAppError } from '../../platform/errors/app-error.ts';
import { PLATFORM_ERRORS } from '../error-statuses.ts';

/**
 * What the data browser may show of one bounded context: its schemas, on each database it keeps them in, read
 * through the context's own pool (as its own role when it has one). The browser never leaves these schemas, and
 * the role's rights decide the rest: it cannot show what the context itself could not read.
 */
export interface DataBrowserContext {
  /** Names the context in the browser's paths. */
  name: string;
  /** The schemas the browser lists and reads; nothing outside them. */
  schemas: string[];
  /** One per database the context's schemas live in (the orders shards: `shard-0`, `shard-1`, …). */
  databases: Array<{ name: string; sql: Sql }>;
}

/** Every statement of the browser (and its lock waits) is cancelled after this long. */
export const STATEMENT_TIMEOUT_MS = 2000;
/** Tables with up to this many rows are counted exactly; beyond it the planner's estimate is shown. */
export const EXACT_COUNT_LIMIT = 10_000;
/** Rows on a table page. */
export const PAGE_SIZE = 50;
/** Characters of a value on a table page (the row page shows up to ROW_VALUE_CHARS). */
const CELL_CHARS = 300;
const ROW_VALUE_CHARS = 100_000;
/** Rows counted at most for a "referenced by" link. */
const REFERENCE_COUNT_LIMIT = 1000;

/** A quoted identifier. Names reach SQL only after they were found in the catalog, and always through this. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const READ_ONLY_STATEMENT = /^\s*(select|explain)\s/i;

/** The statements of one read-only transaction: SELECT or EXPLAIN only, values bound as parameters. */
interface ReadTx {
  rows<T>(text: string, params?: readonly unknown[]): Promise<T[]>;
  /** Rows as arrays of text (every column the query selects is cast to text). */
  values(text: string, params?: readonly unknown[]): Promise<Array<Array<string | null>>>;
  /** Runs `work` in a savepoint: its failure is returned, the transaction goes on. */
  attempt<T>(work: (tx: ReadTx) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }>;
}

function readTx(tx: TxSql): ReadTx {
  const run = (text: string, params: readonly unknown[]) => {
    if (!READ_ONLY_STATEMENT.test(text)) throw new TypeError(`the data browser runs SELECT and EXPLAIN only`);
    return tx.unsafe(text, params as never[]);
  };
  return {
    rows: async <T>(text: string, params: readonly unknown[] = []) => (await run(text, params)) as unknown as T[],
    values: async (text, params = []) => (await run(text, params).values()) as unknown as Array<Array<string | null>>,
    attempt: async (work) => {
      try {
        const value = await tx.savepoint((sp) => work(readTx(sp)));
        return { ok: true, value: value as never };
      } catch (error) {
        return { ok: false, error };
      }
    },
  };
}

/**
 * Runs `work` in a `begin read only` transaction with a short statement_timeout and lock_timeout, and
 * search_path set to pg_catalog (no function or operator of a browsed schema is picked up by name).
 */
async function readOnly<T>(sql: Sql, work: (tx: ReadTx) => Promise<T>): Promise<T> {
  const result = await sql.begin('read only', async (tx) => {
    const read = readTx(tx);
    await read.rows(
      `select set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true),
              set_config('search_path', 'pg_catalog', true)`,
      [String(STATEMENT_TIMEOUT_MS)],
    );
    return { value: await work(read) };
  });
  return (result as { value: T }).value;
}

/** The schemas of a list as a parameter: `in (select json_array_elements_text($1::text::json))`. */
const SCHEMA_LIST = `(select json_array_elements_text($1::text::json))`;

export type RowCount =
  | { kind: 'exact'; n: number }
  | { kind: 'estimate'; n: number }
  /** More rows than EXACT_COUNT_LIMIT and never analyzed: no estimate. */
  | { kind: 'over'; n: number };

export interface TableSummary {
  schema: string;
  table: string;
  /** The role may SELECT from it; else neither a count nor a page is shown. */
  readable: boolean;
  sizeBytes: number;
  rows?: RowCount;
  /** Why it could not be counted (a timeout). */
  error?: string;
}

export interface SchemaListing {
  schema: string;
  /** `missing`: no such schema in this database; `denied`: the role has no USAGE on it. */
  state: 'ok' | 'missing' | 'denied';
  tables: TableSummary[];
}

export interface DatabaseListing {
  database: string;
  /** The role this database is read as. */
  role?: string;
  schemas: SchemaListing[];
  /** Why the database could not be listed at all (unreachable, pool exhausted). */
  error?: string;
}

/** Tables of the context's schemas on one database, with their row counts and sizes. */
export async function listDatabase(
  context: DataBrowserContext,
  database: { name: string; sql: Sql },
): Promise<DatabaseListing> {
  try {
    return await readOnly(database.sql, async (tx) => {
      const schemaList = JSON.stringify(context.schemas);
      const [who] = await tx.rows<{ role: string }>(`select current_user::text as role`);
      const found = await tx.rows<{ name: string; usable: boolean }>(
        `select nspname::text as name, has_schema_privilege(oid, 'USAGE') as usable
           from pg_namespace where nspname in ${SCHEMA_LIST}`,
        [schemaList],
      );
      const tables = await tx.rows<{
        schema: string;
        table: string;
        estimate: number;
        size: string;
        readable: boolean;
      }>(
        `select n.nspname::text as schema, c.relname::text as table, c.reltuples::float8 as estimate,
                pg_total_relation_size(c.oid)::text as size, has_table_privilege(c.oid, 'SELECT') as readable
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname in ${SCHEMA_LIST} and has_schema_privilege(n.oid, 'USAGE') and c.relkind in ('r', 'p')
          order by 1, 2`,
        [schemaList],
      );
      const summaries: TableSummary[] = [];
      for (const t of tables) {
        const summary: TableSummary = {
          schema: t.schema,
          table: t.table,
          readable: t.readable,
          sizeBytes: Number(t.size),
        };
        if (t.readable) {
          const counted = await tx.attempt((sp) =>
            sp.rows<{ n: number }>(
              `select count(*)::int as n from (select 1 from ${quoteIdent(t.schema)}.${quoteIdent(t.table)} limit ${EXACT_COUNT_LIMIT + 1}) s`,
            ),
          );
          if (!counted.ok) summary.error = describeError(counted.error);
          else {
            const n = counted.value[0]!.n;
            summary.rows =
              n <= EXACT_COUNT_LIMIT
                ? { kind: 'exact', n }
                : t.estimate > EXACT_COUNT_LIMIT
                  ? { kind: 'estimate', n: Math.round(t.estimate) }
                  : { kind: 'over', n: EXACT_COUNT_LIMIT };
          }
        }
        summaries.push(summary);
      }
      const schemas: SchemaListing[] = context.schemas.map((schema) => {
        const f = found.find((s) => s.name === schema);
        return {
          schema,
          state: !f ? 'missing' : f.usable ? 'ok' : 'denied',
          tables: summaries.filter((s) => s.schema === schema),
        };
      });
      return { database: database.name, role: who?.role, schemas };
    });
  } catch (error) {
    return { database: database.name, schemas: [], error: describeError(error) };
  }
}

export interface Column {
  name: string;
  type: string;
}

export interface ForeignKey {
  name: string;
  schema: string;
  table: string;
  columns: string[];
  refSchema: string;
  refTable: string;
  refColumns: string[];
  /** The referenced columns are the referenced table's primary key. */
  refIsPrimaryKey: boolean;
}

export interface TableMeta {
  schema: string;
  table: string;
  oid: string;
  columns: Column[];
  /** The primary key's columns in key order; `['ctid']` when the table has none (paged by physical position). */
  key: string[];
  byCtid: boolean;
  indexes: Array<{ name: string; definition: string }>;
  /** Foreign keys of this table, and of others onto it. */
  outgoing: ForeignKey[];
  incoming: ForeignKey[];
}

/** A failure the pages show as such, with the HTTP status it answers. */
export class BrowseError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The table as the catalog knows it; a BrowseError when it is not there or the role may not read it. */
async function tableMeta(tx: ReadTx, schema: string, table: string): Promise<TableMeta> {
  const [found] = await tx.rows<{ oid: string; usable: boolean; readable: boolean; role: string }>(
    `select c.oid::text as oid, has_schema_privilege(n.oid, 'USAGE') as usable,
            has_table_privilege(c.oid, 'SELECT') as readable, current_user::text as role
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`,
    [schema, table],
  );
  if (!found) throw new BrowseError(404, `no table ${schema}.${table} in this database`);
  if (!found.usable) throw new BrowseError(403, `role ${found.role} has no USAGE on schema ${schema}`);
  if (!found.readable) throw new BrowseError(403, `role ${found.role} may not SELECT from ${schema}.${table}`);
  const columns = await tx.rows<Column>(
    `select attname::text as name, format_type(atttypid, atttypmod) as type
       from pg_attribute where attrelid = $1::oid and attnum > 0 and not attisdropped order by attnum`,
    [found.oid],
  );
  const pk = await tx.rows<{ name: string }>(
    `select a.attname::text as name
       from pg_index i cross join lateral unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = $1::oid and i.indisprimary order by k.ord`,
    [found.oid],
  );
  const indexes = await tx.rows<{ name: string; definition: string }>(
    `select indexname::text as name, indexdef as definition from pg_indexes
      where schemaname = $1 and tablename = $2 order by indexname`,
    [schema, table],
  );
  const keys = await tx.rows<{
    name: string;
    schema: string;
    table: string;
    columns: string;
    ref_schema: string;
    ref_table: string;
    ref_columns: string;
    ref_is_pk: boolean;
  }>(
    `select con.conname::text as name, n1.nspname::text as schema, c1.relname::text as table,
            n2.nspname::text as ref_schema, c2.relname::text as ref_table,
            (select json_agg(a.attname::text order by k.ord) from unnest(con.conkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum)::text as columns,
            (select json_agg(a.attname::text order by k.ord) from unnest(con.confkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum)::text as ref_columns,
            exists (select 1 from pg_index i where i.indrelid = con.confrelid and i.indisprimary
                       and string_to_array(i.indkey::text, ' ')::int2[] = con.confkey) as ref_is_pk
       from pg_constraint con
       join pg_class c1 on c1.oid = con.conrelid join pg_namespace n1 on n1.oid = c1.relnamespace
       join pg_class c2 on c2.oid = con.confrelid join pg_namespace n2 on n2.oid = c2.relnamespace
      where con.contype = 'f' and (con.conrelid = $1::oid or con.confrelid = $1::oid)
      order by con.conname`,
    [found.oid],
  );
  const foreign = keys.map((k): ForeignKey => ({
    name: k.name,
    schema: k.schema,
    table: k.table,
    columns: JSON.parse(k.columns) as string[],
    refSchema: k.ref_schema,
    refTable: k.ref_table,
    refColumns: JSON.parse(k.ref_columns) as string[],
    refIsPrimaryKey: k.ref_is_pk,
  }));
  const byCtid = pk.length === 0;
  return {
    schema,
    table,
    oid: found.oid,
    columns,
    key: byCtid ? ['ctid'] : pk.map((p) => p.name),
    byCtid,
    indexes,
    outgoing: foreign.filter((f) => f.schema === schema && f.table === table),
    incoming: foreign.filter((f) => f.refSchema === schema && f.refTable === table),
  };
}

/**
 * Columns are always qualified with the table's alias `r`: an unqualified name in ORDER BY would be the output
 * column of that name (the key cast to text), and the page would be sorted as text.
 */
const ALIAS = 'r';
const columnOf = (name: string) => `${ALIAS}.${quoteIdent(name)}`;
const keyExpression = (meta: TableMeta, column: string) => (meta.byCtid ? `${ALIAS}.ctid` : columnOf(column));
const tableName = (meta: TableMeta) => `${quoteIdent(meta.schema)}.${quoteIdent(meta.table)} ${ALIAS}`;
const rowOf = (exprs: string[]) => `(${exprs.join(', ')})`;

/** A row key in a URL: the value for a one-column key, a JSON array of the values for more. */
export function encodeKey(values: readonly string[]): string {
  return values.length === 1 ? values[0]! : JSON.stringify(values);
}

function decodeKey(raw: string, columns: number): string[] {
  if (columns === 1) return [raw];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== columns || !parsed.every((v) => typeof v === 'string'))
    throw new BrowseError(400, `a key of this table is a JSON array of ${columns} strings`);
  return parsed as string[];
}

/** Rows where one column equals a value (the items of an order). */
export interface Filter {
  column: string;
  value: string;
}

export interface TablePage {
  meta: TableMeta;
  role: string;
  filter?: Filter;
  /** Each row: its key's values, then every column's value (cut at CELL_CHARS, `truncated` then says so). */
  rows: Array<{ key: string[]; cells: Array<{ value: string | null; truncated: boolean }> }>;
  /** The key to continue after, when there are more rows. */
  next?: string;
  /** The page's query, its parameters, and EXPLAIN of exactly that. */
  query: { text: string; params: string[] };
  plan: string;
}

/**
 * One page of `PAGE_SIZE` rows in primary-key order after `after` (keyset: no OFFSET), with the table's indexes
 * and the plan of the page's own query.
 */
export async function readTablePage(
  sql: Sql,
  target: { schema: string; table: string; after?: string; filter?: Filter },
): Promise<TablePage> {
  return readOnly(sql, async (tx) => {
    const meta = await tableMeta(tx, target.schema, target.table);
    const [{ role } = { role: '' }] = await tx.rows<{ role: string }>(`select current_user::text as role`);
    const keys = meta.key.map((k) => keyExpression(meta, k));
    const params: string[] = [];
    const where: string[] = [];
    if (target.filter) {
      const column = meta.columns.find((c) => c.name === target.filter!.column);
      if (!column) throw new BrowseError(404, `no column ${target.filter.column} in ${meta.schema}.${meta.table}`);
      params.push(target.filter.value);
      where.push(`${columnOf(column.name)} = $${params.length}`);
    }
    if (target.after !== undefined) {
      const after = decodeKey(target.after, keys.length);
      const placeholders = after.map((v) => {
        params.push(v);
        return `$${params.length}`;
      });
      where.push(`${rowOf(keys)} > ${rowOf(placeholders)}`);
    }
    const text = [
      `select ${[...keys.map((k) => `${k}::text`), ...meta.columns.map((c) => `left(${columnOf(c.name)}::text, ${CELL_CHARS + 1})`)].join(', ')}`,
      `from ${tableName(meta)}`,
      ...(where.length ? [`where ${where.join(' and ')}`] : []),
      `order by ${keys.join(', ')}`,
      `limit ${PAGE_SIZE + 1}`,
    ].join('\n');
    const found = await tx.values(text, params);
    const plan = await tx.rows<{ 'QUERY PLAN': string }>(`explain ${text}`, params);
    const rows = found.slice(0, PAGE_SIZE).map((r) => ({
      key: r.slice(0, keys.length) as string[],
      cells: r.slice(keys.length).map((value) => ({
        value: value === null ? null : value.slice(0, CELL_CHARS),
        truncated: value !== null && value.length > CELL_CHARS,
      })),
    }));
    return {
      meta,
      role,
      filter: target.filter,
      rows,
      next: found.length > PAGE_SIZE ? encodeKey(rows[rows.length - 1]!.key) : undefined,
      query: { text, params },
      plan: plan.map((p) => p['QUERY PLAN']).join('\n'),
    };
  });
}

export interface Reference {
  key: ForeignKey;
  /** The values this row gives the key's columns (null: the row references nothing). */
  values: Array<string | null>;
  /** Incoming: rows of the other table that reference this row, up to REFERENCE_COUNT_LIMIT (`more` beyond). */
  count?: { n: number; more: boolean };
  /** Why the other table could not be counted (no right on it, or outside the context's schemas). */
  unavailable?: string;
}

export interface RowPage {
  meta: TableMeta;
  role: string;
  key: string[];
  values: Array<{ column: Column; value: string | null; truncated: boolean }>;
  outgoing: Reference[];
  incoming: Reference[];
  query: { text: string; params: string[] };
}

/**
 * One row by its primary key, with the rows it references and, for each foreign key onto this table, how many
 * rows of the referencing table point at it. `schemas`: the context's; tables elsewhere are named, never read.
 */
export async function readRow(
  sql: Sql,
  target: { schema: string; table: string; key: string; schemas: readonly string[] },
): Promise<RowPage | undefined> {
  return readOnly(sql, async (tx) => {
    const meta = await tableMeta(tx, target.schema, target.table);
    const [{ role } = { role: '' }] = await tx.rows<{ role: string }>(`select current_user::text as role`);
    const keys = meta.key.map((k) => keyExpression(meta, k));
    const key = decodeKey(target.key, keys.length);
    const text = [
      `select ${meta.columns.map((c) => `left(${columnOf(c.name)}::text, ${ROW_VALUE_CHARS + 1})`).join(', ')}`,
      `from ${tableName(meta)}`,
      `where ${rowOf(keys)} = ${rowOf(key.map((_, i) => `$${i + 1}`))}`,
    ].join('\n');
    const [row] = await tx.values(text, key);
    if (!row) return undefined;
    const valueOf = (column: string) => row[meta.columns.findIndex((c) => c.name === column)] ?? null;
    const values = meta.columns.map((column, i) => {
      const value = row[i] ?? null;
      return {
        column,
        value: value === null ? null : value.slice(0, ROW_VALUE_CHARS),
        truncated: value !== null && value.length > ROW_VALUE_CHARS,
      };
    });
    const outgoing = meta.outgoing.map((fk): Reference => ({ key: fk, values: fk.columns.map(valueOf) }));
    const incoming: Reference[] = [];
    for (const fk of meta.incoming) {
      const refValues = fk.refColumns.map(valueOf);
      const reference: Reference = { key: fk, values: refValues };
      incoming.push(reference);
      if (!target.schemas.includes(fk.schema)) {
        reference.unavailable = `${fk.schema} is not a schema of this context`;
        continue;
      }
      if (refValues.some((v) => v === null)) continue;
      const counted = await tx.attempt(async (sp) => {
        const other = await tableMeta(sp, fk.schema, fk.table);
        const columns = fk.columns.map((c) => {
          if (!other.columns.some((o) => o.name === c)) throw new BrowseError(404, `no column ${c}`);
          return columnOf(c);
        });
        return sp.rows<{ n: number }>(
          `select count(*)::int as n from (select 1 from ${tableName(other)}
            where ${rowOf(columns)} = ${rowOf(columns.map((_, i) => `$${i + 1}`))} limit ${REFERENCE_COUNT_LIMIT + 1}) s`,
          refValues,
        );
      });
      if (counted.ok) {
        const n = counted.value[0]!.n;
        reference.count = { n: Math.min(n, REFERENCE_COUNT_LIMIT), more: n > REFERENCE_COUNT_LIMIT };
      } else reference.unavailable = describeError(counted.error);
    }
    return { meta, role, key, values, outgoing, incoming, query: { text, params: key } };
  });
}

/** A database failure in words, without a stack: SQLSTATE and message. */
export function describeError(error: unknown): string {
  if (error instanceof BrowseError) return error.message;
  const e = error as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? `${message} (SQLSTATE ${e.code})` : message;
}

/** The HTTP status a failure of a page answers. */
export function statusOf(error: unknown): number {
  if (error instanceof BrowseError) return error.status;
  if (isAppError(error)) return (PLATFORM_ERRORS as Record<string, { status: number }>)[error.code]?.status ?? 500;
  const code = (error as { code?: unknown })?.code;
  if (code === '42501') return 403;
  // A value that is not of the column's type, or a column its value cannot be compared with (json): the input's fault.
  if (typeof code === 'string' && /^22/.test(code)) return 400;
  if (code === '42883') return 400;
  if (code === '57014' || code === '55P03') return 503;
  return 500;
}
