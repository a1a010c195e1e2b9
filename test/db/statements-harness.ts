/**
 * The frame of the statements-by-name tests (test/db/statements-*.test.ts): a fresh PostgreSQL
 * database for the file, made before its tests and dropped after, or a visible skip when
 * SEGQL_TEST_DATABASE_URL is not set; and a concept's statements by key.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Connection } from '../../src/db/index.js';
import { madeStatements, type Statement } from '../../src/db/statement.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from './pg-test-database.js';

/** `tests` get the file's database, there from the first test on. */
export function describeOnPostgres(title: string, label: string, tests: (pg: PgTestDatabase) => void): void {
  describe.runIf(pgAdminUrl === undefined)(title, () => {
    it.skip('skipped: set SEGQL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to compare both texts', () => {});
  });
  describe.runIf(pgAdminUrl !== undefined)(title, () => {
    let db: PgTestDatabase | undefined;
    beforeAll(async () => {
      db = await freshPgDatabase(label);
    });
    afterAll(async () => {
      await db?.drop();
    });
    tests({
      get url() {
        return db!.url;
      },
      get conn() {
        return db!.conn;
      },
      drop: () => db!.drop(),
    });
  });
}

/** The statements a concept made (its module must be imported), by key. */
export function statementsOf(concept: string): (key: string) => Statement {
  return (key) => {
    const found = madeStatements().find((s) => s.name === `${concept}.${key}`);
    if (!found) throw new Error(`no statement ${concept}.${key}`);
    return found;
  };
}

/** The same rows into a table of both databases (`pgRows`: PostgreSQL's, where a value's type differs). */
export async function insertRows(
  sqlite: Connection,
  pg: PgTestDatabase,
  table: string,
  columns: string[],
  rows: unknown[][],
  pgRows = rows,
): Promise<void> {
  const names = columns.join(', ');
  const toSqlite = sqlite.sqlite.prepare(
    `INSERT INTO ${table} (${names}) VALUES (${columns.map(() => '?').join(', ')})`,
  );
  for (const row of rows) toSqlite.run(...row);
  const text = `INSERT INTO ${table} (${names}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`;
  for (const row of pgRows) await pg.conn.pool.query(text, row);
}
