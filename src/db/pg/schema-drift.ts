/**
 * The drift check between the two dialects: every table of the SQLite schema (src/db/schema.ts)
 * must exist in the PostgreSQL schema (src/db/pg/schema.ts) with the same column names,
 * nullability, defaults, keys and indexes, and column types of the same family, so a domain
 * written against one runs on the other. PostgreSQL may add what only it has (the listed extra
 * columns, and indexes of its own: GIN, partial, expression); SQLite may add only the listed
 * indexes that serve nothing on PostgreSQL.
 */
import { is, SQL, Table } from 'drizzle-orm';
import { type PgTable, getTableConfig as pgTableConfig } from 'drizzle-orm/pg-core';
import { type SQLiteTable, getTableConfig as sqliteTableConfig } from 'drizzle-orm/sqlite-core';

/** Columns PostgreSQL has and SQLite has not: the full-text vector that replaces FTS5. */
export const PG_ONLY_COLUMNS: Record<string, readonly string[]> = { search_documents: ['search_vector'] };

/**
 * Indexes SQLite has and PostgreSQL leaves out, by table. None since SQLite too dropped
 * `memberships (audience_id, status)` (drizzle/0025, docs/storage.md): the primary key
 * `(audience_id, profile_id)` serves every read of an audience's members on both.
 */
export const SQLITE_ONLY_INDEXES: Record<string, readonly string[]> = {};

type Family = 'integer' | 'boolean' | 'text' | 'document' | 'bytes' | 'integers';

interface ColumnShape {
  family: Family;
  notNull: boolean;
  hasDefault: boolean;
  unique: boolean;
}

interface IndexShape {
  unique: boolean;
  /** Column names in order, or undefined for an expression index. */
  columns: string[] | undefined;
  partial: boolean;
}

interface TableShape {
  columns: Map<string, ColumnShape>;
  primaryKey: string[];
  indexes: Map<string, IndexShape>;
}

/** Which kinds of a SQLite column's family PostgreSQL may store it as. */
const COMPATIBLE: Record<Family, readonly Family[]> = {
  integer: ['integer'],
  boolean: ['boolean'],
  // JSON kept as text in SQLite may be jsonb in PostgreSQL (payloads, job input and result).
  text: ['text', 'document'],
  document: ['document'],
  // SQLite JSONB is a blob; so is a packed id list, which PostgreSQL may keep as an array.
  bytes: ['document', 'bytes', 'integers'],
  integers: ['integers'],
};

function sqliteFamily(sqlType: string, columnType: string): Family {
  if (columnType === 'SQLiteBoolean') return 'boolean';
  if (columnType === 'SQLiteTextJson') return 'document';
  if (sqlType === 'integer') return 'integer';
  if (sqlType === 'blob') return 'bytes';
  return 'text';
}

function pgFamily(sqlType: string): Family {
  if (/^(bigint|integer|smallint)$/.test(sqlType)) return 'integer';
  if (/^(bigint|integer|smallint)\[\]$/.test(sqlType)) return 'integers';
  if (sqlType === 'boolean') return 'boolean';
  if (sqlType === 'jsonb' || sqlType === 'json') return 'document';
  if (sqlType === 'bytea') return 'bytes';
  return 'text';
}

type AnyColumn = { name: string; notNull: boolean; hasDefault: boolean; isUnique: boolean; primary: boolean };

function indexShape(columns: unknown[], unique: boolean, where: unknown): IndexShape {
  const plain = columns.every((c) => !is(c, SQL) && typeof (c as { name?: unknown }).name === 'string');
  return {
    unique,
    columns: plain ? columns.map((c) => (c as { name: string }).name) : undefined,
    partial: where !== undefined,
  };
}

function sqliteShape(table: SQLiteTable): TableShape {
  const config = sqliteTableConfig(table);
  const columns = new Map<string, ColumnShape>();
  for (const c of config.columns) {
    columns.set(c.name, {
      family: sqliteFamily(c.getSQLType(), c.columnType),
      notNull: c.notNull,
      hasDefault: c.hasDefault,
      unique: c.isUnique,
    });
  }
  const primaryKey = [
    ...config.columns.filter((c: AnyColumn) => c.primary).map((c) => c.name),
    ...config.primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name)),
  ];
  const indexes = new Map(
    config.indexes.map((i) => [i.config.name, indexShape(i.config.columns, i.config.unique, i.config.where)]),
  );
  return { columns, primaryKey, indexes };
}

function pgShape(table: PgTable): TableShape {
  const config = pgTableConfig(table);
  const columns = new Map<string, ColumnShape>();
  for (const c of config.columns) {
    columns.set(c.name, {
      family: pgFamily(c.getSQLType()),
      notNull: c.notNull,
      hasDefault: c.hasDefault,
      unique: c.isUnique,
    });
  }
  const primaryKey = [
    ...config.columns.filter((c: AnyColumn) => c.primary).map((c) => c.name),
    ...config.primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name)),
  ];
  const indexes = new Map(
    config.indexes.map((i) => [i.config.name ?? '', indexShape(i.config.columns, i.config.unique, i.config.where)]),
  );
  return { columns, primaryKey, indexes };
}

function tablesOf<T>(schema: Record<string, unknown>, config: (t: never) => { name: string }): Map<string, T> {
  const out = new Map<string, T>();
  for (const value of Object.values(schema)) {
    if (is(value, Table)) out.set(config(value as never).name, value as T);
  }
  return out;
}

const list = (xs: readonly string[]) => `(${xs.join(', ')})`;

/**
 * Every way the PostgreSQL schema departs from the SQLite one, one sentence each naming the
 * table and column or index; empty when the two are in step.
 */
export function schemaDrift(
  sqliteSchema: Record<string, unknown>,
  pgSchema: Record<string, unknown>,
  pgOnlyColumns: Record<string, readonly string[]> = PG_ONLY_COLUMNS,
  sqliteOnlyIndexes: Record<string, readonly string[]> = SQLITE_ONLY_INDEXES,
): string[] {
  const drift: string[] = [];
  const lite = tablesOf<SQLiteTable>(sqliteSchema, sqliteTableConfig);
  const pgTables = tablesOf<PgTable>(pgSchema, pgTableConfig);
  for (const name of pgTables.keys()) if (!lite.has(name)) drift.push(`table ${name} is only in PostgreSQL`);
  for (const [name, liteTable] of lite) {
    const pgTable = pgTables.get(name);
    if (!pgTable) {
      drift.push(`table ${name} is missing in PostgreSQL`);
      continue;
    }
    const a = sqliteShape(liteTable);
    const b = pgShape(pgTable);
    const extra = new Set(pgOnlyColumns[name] ?? []);
    for (const [column, x] of a.columns) {
      const y = b.columns.get(column);
      if (!y) {
        drift.push(`${name}.${column} is missing in PostgreSQL`);
        continue;
      }
      if (!COMPATIBLE[x.family].includes(y.family))
        drift.push(`${name}.${column} is ${x.family} in SQLite but ${y.family} in PostgreSQL`);
      if (x.notNull !== y.notNull)
        drift.push(`${name}.${column} is ${x.notNull ? 'NOT NULL' : 'nullable'} in SQLite only`);
      // An integer key is assigned by the database either way (a rowid alias; an identity column).
      const assigned = a.primaryKey.length === 1 && a.primaryKey[0] === column;
      if (!assigned && x.hasDefault !== y.hasDefault)
        drift.push(`${name}.${column} has a default in ${x.hasDefault ? 'SQLite' : 'PostgreSQL'} only`);
      if (x.unique !== y.unique)
        drift.push(`${name}.${column} is unique in ${x.unique ? 'SQLite' : 'PostgreSQL'} only`);
    }
    for (const column of b.columns.keys()) {
      if (!a.columns.has(column) && !extra.has(column)) drift.push(`${name}.${column} is only in PostgreSQL`);
    }
    if (list(a.primaryKey) !== list(b.primaryKey))
      drift.push(`${name} has primary key ${list(a.primaryKey)} in SQLite but ${list(b.primaryKey)} in PostgreSQL`);
    const omitted = new Set(sqliteOnlyIndexes[name] ?? []);
    for (const [index, x] of a.indexes) {
      const y = b.indexes.get(index);
      if (y && omitted.has(index))
        drift.push(`index ${index} on ${name} is listed as SQLite's only but PostgreSQL has it`);
      if (!y) {
        if (!omitted.has(index)) drift.push(`index ${index} on ${name} is missing in PostgreSQL`);
        continue;
      }
      if (x.unique !== y.unique)
        drift.push(`index ${index} on ${name} is unique in ${x.unique ? 'SQLite' : 'PostgreSQL'} only`);
      if (list(x.columns ?? ['<expression>']) !== list(y.columns ?? ['<expression>']) || x.partial !== y.partial)
        drift.push(
          `index ${index} on ${name} covers ${list(x.columns ?? ['<expression>'])} in SQLite but ${list(y.columns ?? ['<expression>'])} in PostgreSQL`,
        );
    }
  }
  return drift;
}
