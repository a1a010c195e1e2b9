/**
 * The sandboxes statements (src/domain/sandboxes.ts): both texts give the same rows. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import { madeStatements } from '../../src/db/statement.js';
import '../../src/domain/sandboxes.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from './pg-test-database.js';

describe.runIf(pgAdminUrl !== undefined)('sandboxes statements on both databases', () => {
  let pg: PgTestDatabase;
  beforeAll(async () => {
    pg = await freshPgDatabase('statements_sandboxes');
  });
  afterAll(async () => {
    await pg?.drop();
  });

  it('gives the same rows from both texts', async () => {
    const q = (name: string) => madeStatements().find((s) => s.name === `sandboxes.${name}`)!;
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const inserted = [];
      for (const runner of [sqlite, postgres]) {
        inserted.push(await runner.get(q('insert'), ['staging', 5_000]));
      }
      expect(inserted[1]).toEqual(inserted[0]);
      expect(inserted[0]).toMatchObject({ name: 'staging', createdAt: 5_000, profileCount: 0 });
      for (const params of [['staging'], ['missing']]) {
        const rows = await sqlite.all(q('byName'), params);
        expect(await postgres.all(q('byName'), params), String(params[0])).toEqual(rows);
      }
    } finally {
      sqlite.close();
    }
  });
});
