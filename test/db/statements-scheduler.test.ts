/**
 * Statements by name, the scheduler's read of a schedule's active run
 * (src/domain/schedules/scheduler.ts): both texts find the newest live job alike. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/schedules/scheduler.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('scheduler statements on PostgreSQL', 'statements_scheduler', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('scheduler');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const columns = ['id', 'sandbox_id', 'kind', 'status', 'input', 'schedule_id', 'created_at', 'updated_at'];
      await insertRows(sqlite, pg, 'jobs', columns, [
        [1, 1, 'SEGMENT', 'PROCESSING', '{}', 7, 10, 10],
        [2, 1, 'SEGMENT', 'CANCELLING', '{}', 7, 20, 20],
        [3, 1, 'SEGMENT', 'SUCCEEDED', '{}', 7, 30, 30],
        [4, 1, 'EXPORT', 'FAILED', '{}', 8, 40, 40],
        [5, 1, 'EXPORT', 'QUEUED', '{}', null, 50, 50],
        [6, 1, 'EXPORT', 'CANCELLED', '{}', 8, 60, 60],
      ]);
      const both = async <T>(f: (runner: StatementRunner) => Promise<T>) =>
        [await f(sqlite), await f(postgres)] as const;
      const runs = await both(async (r) => [
        await r.get(q('activeRun'), [7]),
        await r.get(q('activeRun'), [8]),
        await r.get(q('activeRun'), [9]),
      ]);
      expect(runs[1]).toEqual(runs[0]);
      // The newest live run of schedule 7 (job 3 has ended); none of schedule 8 or 9.
      expect(runs[0]).toEqual([{ id: 2, status: 'CANCELLING' }, undefined, undefined]);
    } finally {
      sqlite.close();
    }
  });
});
