/**
 * The sandboxes statements (src/domain/sandboxes.ts): both texts give the same rows. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/sandboxes.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('sandboxes statements on both databases', 'statements_sandboxes', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('sandboxes');
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
