/**
 * Copies a SQLite store, every table, into an empty migrated PostgreSQL database: the way a
 * deployment that outgrew one process moves to PostgreSQL (`segql migrate --from-sqlite FILE`),
 * and how the tests and benchmarks put the same data in both databases.
 *
 * It is generic over the schema: the drift check keeps the two schemas' tables and columns in
 * step, so each SQLite table is read column by column and written to the table of the same name,
 * converting where the column types differ (JSON text and JSONB blobs alike into jsonb, 0/1 into
 * booleans). Columns only PostgreSQL has are its own to compute (the search vector). Triggers are
 * off while copying: what they keep (profile counts, search documents) is copied as SQLite had it.
 */
import type Database from 'better-sqlite3';
import { type PgTable, getTableConfig as pgTableConfig } from 'drizzle-orm/pg-core';
import { type SQLiteTable, getTableConfig as sqliteTableConfig } from 'drizzle-orm/sqlite-core';
import type pg from 'pg';
import * as sqliteSchema from '../schema.js';
import * as pgSchema from './schema.js';

/** Rows per INSERT: large enough that round trips do not dominate, small enough for the parameter arrays. */
const BATCH = 5_000;

type Conversion = 'integer' | 'text' | 'boolean' | 'jsonb' | 'bytea';

interface ColumnCopy {
  name: string;
  conversion: Conversion;
}

const PG_ARRAY_TYPE: Record<Conversion, string> = {
  integer: 'bigint[]',
  text: 'text[]',
  boolean: 'boolean[]',
  jsonb: 'text[]',
  bytea: 'bytea[]',
};

function tablesOf<T>(schema: Record<string, unknown>, isTable: (v: unknown) => v is T): T[] {
  return Object.values(schema).filter(isTable);
}

const isDrizzleTable = (v: unknown): v is never =>
  typeof v === 'object' && v !== null && Symbol.for('drizzle:IsDrizzleTable') in v;

/** How each column of `name` crosses over, from the two schemas' column types. */
function columnCopies(sqliteTable: SQLiteTable, pgTable: PgTable): ColumnCopy[] {
  const pgColumns = new Map(pgTableConfig(pgTable).columns.map((c) => [c.name, c]));
  return sqliteTableConfig(sqliteTable).columns.map((c) => {
    const target = pgColumns.get(c.name);
    if (!target) throw new Error(`${sqliteTableConfig(sqliteTable).name}.${c.name} has no PostgreSQL column`);
    const pgType = target.getSQLType();
    let conversion: Conversion;
    if (pgType === 'jsonb') conversion = 'jsonb';
    else if (pgType === 'boolean') conversion = 'boolean';
    else if (pgType === 'bytea') conversion = 'bytea';
    else if (pgType === 'bigint' || pgType === 'integer') conversion = 'integer';
    else conversion = 'text';
    return { name: c.name, conversion };
  });
}

/** Tables in an order their foreign keys accept (only profiles → sandboxes has one). */
function copyOrder(names: string[]): string[] {
  return [...names].sort((a, b) => Number(b === 'sandboxes') - Number(a === 'sandboxes'));
}

export interface CopyReport {
  /** Rows copied per table. */
  rows: Record<string, number>;
}

/**
 * Copies every row of `source` into `target`, in one PostgreSQL transaction: either all of the
 * store arrives or none of it. `target` must be migrated and hold no sandbox yet.
 */
export async function copySqliteToPostgres(
  source: Database.Database,
  target: pg.ClientBase,
  onTable?: (table: string, rows: number) => void,
): Promise<CopyReport> {
  const pgTables = new Map(
    tablesOf<PgTable>(pgSchema as Record<string, unknown>, isDrizzleTable).map((t) => [pgTableConfig(t).name, t]),
  );
  const sqliteTables = new Map(
    tablesOf<SQLiteTable>(sqliteSchema as Record<string, unknown>, isDrizzleTable).map((t) => [
      sqliteTableConfig(t).name,
      t,
    ]),
  );
  const existing = await target.query<{ n: number }>('SELECT count(*) AS n FROM sandboxes');
  if (existing.rows[0]!.n > 0) throw new Error('The PostgreSQL database already holds data; copy into an empty one');
  const report: CopyReport = { rows: {} };
  await target.query('BEGIN');
  try {
    for (const name of copyOrder([...sqliteTables.keys()])) {
      const pgTable = pgTables.get(name);
      if (!pgTable) throw new Error(`table ${name} is missing in PostgreSQL`);
      const columns = columnCopies(sqliteTables.get(name)!, pgTable);
      await target.query(`ALTER TABLE ${name} DISABLE TRIGGER USER`);
      report.rows[name] = await copyTable(source, target, name, columns);
      await target.query(`ALTER TABLE ${name} ENABLE TRIGGER USER`);
      onTable?.(name, report.rows[name]!);
      // Identity columns carry on after the copied ids, as SQLite's AUTOINCREMENT would.
      const identity = pgTableConfig(pgTable).columns.find((c) => c.name === 'id' && c.primary);
      if (identity && report.rows[name]! > 0) {
        await target.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT max(id) FROM ${name}))`, [name]);
      }
    }
    await target.query('COMMIT');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => {});
    throw err;
  }
  return report;
}

async function copyTable(
  source: Database.Database,
  target: pg.ClientBase,
  table: string,
  columns: ColumnCopy[],
): Promise<number> {
  // Table and column names come from the schema modules, never from input.
  // json() reads a JSONB blob and JSON text alike (a text column may hold either), and checks it.
  const select = columns.map((c) => (c.conversion === 'jsonb' ? `json(${c.name})` : c.name)).join(', ');
  const rows = source.prepare(`SELECT ${select} FROM ${table}`).raw().iterate() as IterableIterator<unknown[]>;
  const casts = columns.map((c, i) => `$${i + 1}::${PG_ARRAY_TYPE[c.conversion]}`).join(', ');
  const names = columns.map((c) => c.name);
  const values = columns.map((c) => (c.conversion === 'jsonb' ? `u.${c.name}::jsonb` : `u.${c.name}`)).join(', ');
  const insert = `INSERT INTO ${table} (${names.join(', ')}) SELECT ${values} FROM unnest(${casts}) AS u(${names.join(', ')})`;
  let batch: unknown[][] = columns.map(() => []);
  let pending = 0;
  let total = 0;
  const flush = async () => {
    if (pending === 0) return;
    await target.query(insert, batch);
    total += pending;
    batch = columns.map(() => []);
    pending = 0;
  };
  for (const row of rows) {
    columns.forEach((c, i) => {
      const v = row[i];
      batch[i]!.push(c.conversion === 'boolean' && v !== null ? v === 1 : v);
    });
    if (++pending === BATCH) await flush();
  }
  await flush();
  return total;
}
