import type { Db } from './connect.ts';

const IDENTIFIER = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;
const SQL_TYPE = /^[a-z][a-z0-9_ ]*(\(\d+(,\s*\d+)?\))?$/;

export interface BulkUpdateSpec {
  /** `schema.table` */
  table: string;
  /** The key column, matched against `ids`. */
  idColumn: string;
  idType: string;
  /** The column that gets the per-row value. */
  column: string;
  valueType: string;
}

/**
 * Sets a different value on each row in ONE statement: `update t set c = v.value from unnest($1, $2)`.
 * Identifiers and types come from code, never from input, and are checked against a strict pattern.
 * Returns the number of rows changed.
 * @example await bulkUpdate(tx, { table: 'notes.notes', idColumn: 'id', idType: 'bigint', column: 'rank', valueType: 'numeric' }, [1, 2], ['3.5', '4']);
 */
export async function bulkUpdate(db: Db, spec: BulkUpdateSpec, ids: readonly (string | number)[], values: readonly (string | number | null)[]): Promise<number> {
  for (const name of [spec.table, spec.idColumn, spec.column]) {
    if (!IDENTIFIER.test(name)) throw new TypeError(`bulkUpdate: "${name}" is not a plain identifier`);
  }
  for (const type of [spec.idType, spec.valueType]) {
    if (!SQL_TYPE.test(type)) throw new TypeError(`bulkUpdate: "${type}" is not a plain SQL type`);
  }
  if (ids.length !== values.length) throw new TypeError(`bulkUpdate: ${ids.length} ids but ${values.length} values`);
  if (ids.length === 0) return 0;
  const text = `update ${spec.table} as t set ${spec.column} = v.value
    from unnest($1::${spec.idType}[], $2::${spec.valueType}[]) as v(id, value)
    where t.${spec.idColumn} = v.id`;
  const result = await db.unsafe(text, [ids as never, values as never]);
  return result.count;
}
