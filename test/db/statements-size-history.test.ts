/**
 * The size-history statements (src/domain/size-history.ts): both texts give the same rows. Runs
 * when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/size-history.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('size-history statements on both databases', 'statements_size_history', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('size-history');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = 'INSERT INTO audience_size_history (id, sandbox_id, audience_id, job_id, "at", "before", "size")';
      const points = [
        [1, 1, 10, 100, 1_000, 0, 5],
        [2, 1, 11, 100, 1_000, 0, 7],
        [3, 1, 10, 101, 2_000, 5, 9],
        [4, 2, 10, 102, 3_000, 9, 1],
      ];
      for (const p of points) {
        sqlite.sqlite.prepare(`${insert} VALUES (?, ?, ?, ?, ?, ?, ?)`).run(...p);
        await pg.conn.pool.query(`${insert} VALUES ($1, $2, $3, $4, $5, $6, $7)`, p);
      }
      const max = Number.MAX_SAFE_INTEGER;
      const min = Number.MIN_SAFE_INTEGER;
      for (const [name, params] of [
        ['pageForward', [1, 10, max, min, 21]],
        ['pageForward', [1, 10, 3, min, 21]],
        ['pageBackward', [1, 10, max, 1, 21]],
        ['pageBackward', [1, 10, max, min, 1]],
        ['count', [1, 10]],
        ['ofJob', [1, 100]],
        ['ofJob', [2, 100]],
      ] as const) {
        const rows = await sqlite.all(q(name), params);
        expect(await postgres.all(q(name), params), name).toEqual(rows);
      }
      expect(await sqlite.all(q('pageForward'), [1, 10, max, min, 21])).toEqual([
        { id: 3, sandboxId: 1, audienceId: 10, jobId: 101, at: 2_000, before: 5, size: 9 },
        { id: 1, sandboxId: 1, audienceId: 10, jobId: 100, at: 1_000, before: 0, size: 5 },
      ]);
      expect(await postgres.get(q('count'), [1, 10])).toEqual({ n: 2 });
    } finally {
      sqlite.close();
    }
  });
});
