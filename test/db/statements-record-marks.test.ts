/**
 * Statements by name, record marks (src/domain/exports/record-index.ts): both texts store an
 * export's marks from one JSON array, find the mark a page starts from and the mark that starts
 * the next file, and drop a dataset's marks. Runs when SEGQL_TEST_DATABASE_URL names a
 * PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/exports/record-index.js';
import { describeOnPostgres, statementsOf } from './statements-harness.js';

describeOnPostgres('record marks statements on PostgreSQL', 'statements_record_marks', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('record-marks');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const runners = [sqlite, postgres];
      const same = async (key: string, params: unknown[]) => {
        const rows = await sqlite.all(q(key), params);
        expect(await postgres.all(q(key), params), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      // Two exports of dataset 1 (jobs 10 and 11), one of dataset 2 (job 20); a file name with a quote and non-ASCII.
      const job10 = [
        [0, 'export-10-audience-1.ndjson', 0],
        [1000, 'export-10-audience-1.ndjson', 123_456],
        [1500, "export-10-audience-2 'é'.ndjson", 0],
        [2000, "export-10-audience-2 'é'.ndjson", 9_007_199_254],
      ];
      for (const runner of runners) {
        expect(await runner.run(q('insertAll'), [1, 10, JSON.stringify(job10)])).toEqual({ changes: 4 });
        expect(await runner.run(q('insertAll'), [1, 11, JSON.stringify([[0, 'records-11.ndjson', 0]])])).toEqual({
          changes: 1,
        });
        expect(await runner.run(q('insertAll'), [2, 20, JSON.stringify([])])).toEqual({ changes: 0 });
        expect(await runner.run(q('insertAll'), [2, 20, JSON.stringify([[0, 'records-20.ndjson', 7]])])).toEqual({
          changes: 1,
        });
      }
      expect(await same('atOrBefore', [10, 0])).toEqual([{ row: 0, file: 'export-10-audience-1.ndjson', offset: 0 }]);
      expect(await same('atOrBefore', [10, 1499])).toEqual([
        { row: 1000, file: 'export-10-audience-1.ndjson', offset: 123_456 },
      ]);
      expect(await same('atOrBefore', [10, 5000])).toEqual([
        { row: 2000, file: "export-10-audience-2 'é'.ndjson", offset: 9_007_199_254 },
      ]);
      expect(await same('atOrBefore', [12, 0])).toEqual([]);
      expect(await same('nextFile', [10, 1001, 'export-10-audience-1.ndjson'])).toEqual([
        { row: 1500, file: "export-10-audience-2 'é'.ndjson", offset: 0 },
      ]);
      expect(await same('nextFile', [10, 2001, "export-10-audience-2 'é'.ndjson"])).toEqual([]);
      for (const runner of runners) {
        expect(await runner.run(q('deleteOfDataset'), [1])).toEqual({ changes: 5 });
        expect(await runner.run(q('deleteOfDataset'), [1])).toEqual({ changes: 0 });
      }
      expect(await same('atOrBefore', [10, 5000])).toEqual([]);
      expect(await same('atOrBefore', [20, 5000])).toEqual([{ row: 0, file: 'records-20.ndjson', offset: 7 }]);
    } finally {
      sqlite.close();
    }
  });
});
