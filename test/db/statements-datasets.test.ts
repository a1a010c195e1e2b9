/**
 * Statements by name, datasets (src/domain/exports/datasets.ts): both texts give the same
 * datasets, files, exported row counts and active exports. Runs when SEGQL_TEST_DATABASE_URL
 * names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/exports/datasets.js';
import '../../src/domain/exports/record-index.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('datasets statements on PostgreSQL', 'statements_datasets', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('datasets');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][]) =>
        insertRows(sqlite, pg, table, columns, rows);
      await insert('sandboxes', ['id', 'name', 'created_at'], [[1, 'prod', 0]]);
      const inserted = [];
      for (const runner of [sqlite, postgres]) {
        for (const [name, format, at] of [
          ['a', 'NDJSON', 1_000],
          ['b', 'CSV', 2_000],
          ['c', 'PARQUET', 3_000],
        ])
          inserted.push(await runner.get(q('insert'), [1, name, format, at]));
      }
      expect(inserted.slice(3)).toEqual(inserted.slice(0, 3));
      expect(inserted[0]).toMatchObject({
        sandboxId: 1,
        name: 'a',
        format: 'NDJSON',
        currentJobId: null,
        createdAt: 1_000,
      });
      await insert(
        'dataset_files',
        ['dataset_id', 'name', 'job_id', '"rows"', 'bytes', 'sha256', 'created_at'],
        [
          [1, 'part-b.ndjson', 10, 3, 30, 'x', 5],
          [1, 'Part-a.ndjson', 10, 2, 20, 'y', 5],
          [1, 'part-a.ndjson', 11, 1, 10, 'z', 6],
        ],
      );
      const job = (id: number, kind: string, status: string, input: object, result: object | null) => [
        id,
        1,
        kind,
        status,
        JSON.stringify(input),
        result === null ? null : JSON.stringify(result),
        1,
        1,
      ];
      await insert(
        'jobs',
        ['id', 'sandbox_id', 'kind', 'status', 'input', 'result', 'created_at', 'updated_at'],
        [
          job(10, 'EXPORT', 'SUCCEEDED', { datasetId: 1 }, { metrics: { totalExportedProfileCounter: 3 } }),
          job(11, 'EXPORT', 'QUEUED', { datasetId: 1 }, { metrics: { totalExportedProfileCounter: 'x' } }),
          job(12, 'EXPORT', 'PROCESSING', { datasetId: 1 }, null),
          job(13, 'EXPORT', 'CANCELLING', { datasetId: 2 }, null),
          job(14, 'SEGMENT', 'QUEUED', { datasetId: 1 }, null),
          job(15, 'EXPORT', 'FAILED', { datasetId: 1 }, null),
        ],
      );
      await insert(
        'dataset_record_marks',
        ['dataset_id', 'job_id', '"row"', 'file', '"offset"'],
        [
          [1, 10, 0, 'part-b.ndjson', 0],
          [1, 11, 0, 'part-a.ndjson', 0],
        ],
      );
      const same = async (key: string, params: unknown[]) => {
        const rows = await sqlite.all(q(key), params);
        expect(await postgres.all(q(key), params), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      expect(await same('byIds', [1, JSON.stringify([1, 3, 9])])).toHaveLength(2);
      await same('byIds', [2, JSON.stringify([1])]);
      await same('byName', [1, 'b']);
      await same('byName', [1, 'missing']);
      const max = Number.MAX_SAFE_INTEGER;
      expect(await same('pageDown', [1, max, 0, 2])).toMatchObject([{ name: 'c' }, { name: 'b' }]);
      await same('pageDown', [1, 3, 1, 5]);
      expect(await same('pageUp', [1, max, 1, 5])).toMatchObject([{ name: 'b' }, { name: 'c' }]);
      expect(await same('count', [1])).toEqual([{ n: 3 }]);
      expect((await same('files', [1])).map((f) => (f as { name: string }).name)).toEqual([
        'part-a.ndjson',
        'Part-a.ndjson',
        'part-b.ndjson',
      ]);
      await same('file', [1, 'Part-a.ndjson']);
      await same('file', [1, 'missing']);
      expect(await same('exportedRows', [10])).toEqual([{ n: 3 }]);
      expect(await same('exportedRows', [11])).toEqual([{ n: null }]);
      expect(await same('exportedRows', [12])).toEqual([]);
      expect(await same('activeExportsInto', [1, 1])).toEqual([{ id: 11 }, { id: 12 }]);
      await same('activeExportsInto', [1, 2]);
      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(statementsOf('record-marks')('deleteOfDataset'), [1])).toEqual({ changes: 2 });
        expect(await runner.run(q('deleteFiles'), [1])).toEqual({ changes: 3 });
        expect(await runner.run(q('delete'), [1])).toEqual({ changes: 1 });
      }
      await same('byIds', [1, JSON.stringify([1, 2, 3])]);
    } finally {
      sqlite.close();
    }
  });
});
