/**
 * Statements by name (docs/scale-out.md "The storage boundary", step 2): each statement of the
 * domain written once per database, the SQLite text and the PostgreSQL text side by side, taking
 * the same parameters in the same order and giving rows of the same shape, so the code that runs
 * it does not know which database answered. A list parameter is the JSON text of an array on
 * both (SQLite reads it with `json_each`, PostgreSQL with `jsonb_array_elements_text`); a JSON
 * value comes back as text on both. Inserts that need the new row's id say `RETURNING`.
 *
 * Every statement made here is recorded, so a test can prepare each text against its migrated
 * schema (test/db/statements.test.ts): a text that names a column the other database lacks fails
 * the suite, not a request.
 */
import type Database from 'better-sqlite3';

/** A statement in both dialects. */
export interface Statement {
  readonly sqlite: string;
  readonly postgres: string;
  /** Where it was written (module and key), for the test's messages. */
  readonly name: string;
}

/**
 * How a unit's handle runs statements, on either database: always asynchronously. The caller
 * names the shape of the rows its statement returns, as it did with better-sqlite3.
 */
export interface StatementRunner {
  all<Row>(statement: Statement, params?: readonly unknown[]): Promise<Row[]>;
  get<Row>(statement: Statement, params?: readonly unknown[]): Promise<Row | undefined>;
  /** A write; `changes` is how many rows it inserted, updated or deleted. */
  run(statement: Statement, params?: readonly unknown[]): Promise<{ changes: number }>;
}

const made: Statement[] = [];

/** Every statement the loaded modules have made. */
export function madeStatements(): readonly Statement[] {
  return made;
}

/** The statements of one concept, each written for both databases. */
export function statements<T extends Record<string, { sqlite: string; postgres: string }>>(
  module: string,
  texts: T,
): { [K in keyof T]: Statement } {
  const out = {} as { [K in keyof T]: Statement };
  for (const key of Object.keys(texts) as (keyof T & string)[]) {
    const { sqlite, postgres } = texts[key]!;
    const statement: Statement = { sqlite, postgres, name: `${module}.${key}` };
    made.push(statement);
    out[key] = statement;
  }
  return out;
}

const preparedBy = new WeakMap<Database.Database, WeakMap<Statement, Database.Statement>>();

/**
 * A statement's SQLite text prepared once on this connection. The code that must stay
 * synchronous on SQLite (the ingest path, a job worker's row loop, the reads they share: docs/
 * scale-out.md step 1) runs the same catalogue statement through it, so a statement is written
 * once whichever way it is called; on PostgreSQL those paths are the cluster's own code.
 */
export function preparedOn(sqlite: Database.Database, statement: Statement): Database.Statement {
  let mine = preparedBy.get(sqlite);
  if (!mine) {
    mine = new WeakMap();
    preparedBy.set(sqlite, mine);
  }
  let p = mine.get(statement);
  if (!p) {
    p = sqlite.prepare(statement.sqlite);
    mine.set(statement, p);
  }
  return p;
}

/**
 * The SQLite side: each statement prepared once on the connection and kept. Its answers are
 * ready at once; they are promises so that the calling code is the same on PostgreSQL.
 */
export function sqliteStatementRunner(sqlite: Database.Database): StatementRunner {
  return {
    async all<Row>(statement: Statement, params: readonly unknown[] = []) {
      return preparedOn(sqlite, statement).all(...params) as Row[];
    },
    async get<Row>(statement: Statement, params: readonly unknown[] = []) {
      return preparedOn(sqlite, statement).get(...params) as Row | undefined;
    },
    async run(statement: Statement, params: readonly unknown[] = []) {
      return { changes: preparedOn(sqlite, statement).run(...params).changes };
    },
  };
}
