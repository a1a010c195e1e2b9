/**
 * Statements by name, previews (src/domain/previews/previews.ts): both texts give the same
 * status, sample ids and latest preview of a definition, and delete the same rows. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import '../../src/domain/previews/previews.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('previews statements on PostgreSQL', 'statements_previews', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('previews');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][]) =>
        insertRows(sqlite, pg, table, columns, rows);
      await insert('sandboxes', ['id', 'name', 'created_at'], [[1, 'prod', 0]]);
      const job = (id: number, sandboxId: number, kind: string, status: string, input: object) => [
        id,
        sandboxId,
        kind,
        status,
        JSON.stringify(input),
        1,
        1,
      ];
      await insert(
        'jobs',
        ['id', 'sandbox_id', 'kind', 'status', 'input', 'created_at', 'updated_at'],
        [
          job(10, 1, 'PREVIEW', 'SUCCEEDED', { definitionId: 7 }),
          job(11, 1, 'PREVIEW', 'PROCESSING', { definitionId: 7 }),
          job(12, 1, 'PREVIEW', 'QUEUED', { definitionId: 8 }),
          job(13, 1, 'SEGMENT', 'QUEUED', { definitionId: 7 }),
          job(14, 2, 'PREVIEW', 'QUEUED', { definitionId: 7 }),
          job(15, 1, 'PREVIEW', 'QUEUED', { expression: 'x' }),
        ],
      );
      const ids = Buffer.from(new Float64Array([3, 5, 8]).buffer);
      await insert(
        'preview_results',
        ['job_id', 'sandbox_id', 'profile_ids', 'count'],
        [
          [10, 1, ids, 3],
          [11, 1, Buffer.alloc(0), 0],
        ],
      );
      const same = async (key: string, params: unknown[]) => {
        const rows = await sqlite.all(q(key), params);
        expect(await postgres.all(q(key), params), `${key} ${JSON.stringify(params)}`).toEqual(rows);
        return rows;
      };
      expect(await same('status', [11])).toEqual([{ status: 'PROCESSING' }]);
      await same('status', [99]);
      expect(await same('results', [1, 10])).toEqual([{ profileIds: ids, count: 3 }]);
      await same('results', [1, 11]);
      await same('results', [2, 10]);
      expect(await same('latestOfDefinition', [1, 7])).toEqual([{ id: 11 }]);
      expect(await same('latestOfDefinition', [1, 8])).toEqual([{ id: 12 }]);
      await same('latestOfDefinition', [1, 9]);
      for (const runner of [sqlite, postgres]) {
        expect(await runner.run(q('deleteResults'), [10])).toEqual({ changes: 1 });
        expect(await runner.run(q('deleteJob'), [10])).toEqual({ changes: 1 });
      }
      expect(await same('latestOfDefinition', [1, 7])).toEqual([{ id: 11 }]);
      await same('results', [1, 10]);
    } finally {
      sqlite.close();
    }
  });
});
