/**
 * Rows of a sandbox's table by id, for the loaders every page goes through: one statement
 * prepared once per connection (the ids travel as one JSON array), rows in the shape Drizzle's
 * `select()` gives. A Drizzle query built per call spent more time building and preparing SQL
 * than SQLite spent running it (the `api` bench's profile).
 */
import { getTableColumns, getTableName, type InferSelectModel, Placeholder } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { cacheKey } from './connection-cache.js';
import type { Connection } from './index.js';

type ByIds = (sandboxId: number, ids: readonly number[]) => Record<string, unknown>[];
const STATEMENTS = cacheKey<Map<string, ByIds>>('rows by ids');

/** Rows of `table` (which has `id` and `sandbox_id`) with these ids in this sandbox, in no order. */
export function rowsByIds<T extends SQLiteTable>(
  conn: Connection,
  table: T,
  sandboxId: number,
  ids: readonly number[],
): InferSelectModel<T>[] {
  if (ids.length === 0) return [];
  const statements = conn.cache.get(STATEMENTS, () => new Map<string, ByIds>());
  const name = getTableName(table);
  let byIds = statements.get(name);
  if (!byIds) {
    byIds = prepareByIds(conn, name, getTableColumns(table) as Record<string, SQLiteColumn>);
    statements.set(name, byIds);
  }
  return byIds(sandboxId, ids) as InferSelectModel<T>[];
}

function prepareByIds(conn: Connection, table: string, columns: Record<string, SQLiteColumn>): ByIds {
  const list = Object.entries(columns)
    .map(([key, column]) => `"${column.name}" AS "${key}"`)
    .join(', ');
  const statement = conn.sqlite
    .prepare(`SELECT ${list} FROM "${table}" WHERE sandbox_id = ? AND id IN (SELECT value FROM json_each(?))`)
    .raw();
  const toModel = modelRows(columns);
  return (sandboxId, ids) => toModel(statement.all(sandboxId, JSON.stringify(ids)) as unknown[][]);
}

/**
 * Raw rows (values in the table's column order) in the shape Drizzle's `select()` gives: keyed
 * by the model's names, mapping only the columns whose driver value differs from the model's
 * (booleans, JSON modes).
 */
function modelRows(columns: Record<string, SQLiteColumn>): (rows: unknown[][]) => Record<string, unknown>[] {
  const entries = Object.entries(columns);
  const mapped = entries.map(
    ([, column]) => column.columnType !== 'SQLiteInteger' && column.columnType !== 'SQLiteText',
  );
  return (rows) =>
    rows.map((row) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < entries.length; i++) {
        const value = row[i];
        out[entries[i]![0]] =
          mapped[i] && value !== null && value !== undefined ? entries[i]![1].mapFromDriverValue(value) : value;
      }
      return out;
    });
}

/**
 * Every column of `table` read through `alias` (`"alias"."column" AS "model name"`, in the
 * model's order), and what turns raw rows starting with those columns into Drizzle's shape: for
 * hand-written statements that read a table's rows beside values of their own, which they
 * select after the table's columns and read from the raw row's end.
 */
export function modelColumns<T extends SQLiteTable>(
  table: T,
  alias: string,
): { list: string; toModel(rows: unknown[][]): InferSelectModel<T>[] } {
  const columns = getTableColumns(table) as Record<string, SQLiteColumn>;
  const list = Object.entries(columns)
    .map(([key, column]) => `"${alias}"."${column.name}" AS "${key}"`)
    .join(', ');
  const toModel = modelRows(columns);
  return { list, toModel: (rows) => toModel(rows) as InferSelectModel<T>[] };
}

/**
 * A Drizzle `select()` of every column of `table`, built once, run as a plain prepared
 * statement: placeholders (`sql.placeholder(name)`) bound from `values` at run time, rows in
 * the shape Drizzle gives, mapping only the columns whose driver value differs. Drizzle's own
 * per-row mapping was a visible share of a page request's CPU (the `api` bench).
 */
export function preparedSelect<T extends SQLiteTable>(
  conn: Connection,
  table: T,
  query: { toSQL(): { sql: string; params: unknown[] } },
): (values: Record<string, unknown>) => InferSelectModel<T>[] {
  const { sql, params } = query.toSQL();
  const statement = conn.sqlite.prepare(sql).raw();
  const toModel = modelRows(getTableColumns(table) as Record<string, SQLiteColumn>);
  return (values) => {
    const args = params.map((p) => (p instanceof Placeholder ? values[p.name] : p));
    return toModel(statement.all(...args) as unknown[][]) as InferSelectModel<T>[];
  };
}
