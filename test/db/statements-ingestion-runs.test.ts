/**
 * Statements by name, ingestion runs (src/domain/external-audiences/ingestion-run.ts): both texts
 * give the same ended uploads, pages of runs and of a run's errors, and counts. Runs when
 * SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/external-audiences/ingestion-run.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('ingestion run statements on PostgreSQL', 'statements_ingestion_runs', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('ingestion-runs');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const insert = (table: string, columns: string[], rows: unknown[][]) =>
        insertRows(sqlite, pg, table, columns, rows);
      await insert('sandboxes', ['id', 'name', 'created_at'], [[1, 'prod', 0]]);
      const job = (
        id: number,
        kind: string,
        status: string,
        audience: number,
        upload: string,
        finishedAt: number | null,
      ) => [
        id,
        1,
        kind,
        status,
        JSON.stringify({ externalAudienceId: audience, audienceId: 9, upload }),
        finishedAt,
        1,
        1,
      ];
      await insert(
        'jobs',
        ['id', 'sandbox_id', 'kind', 'status', 'input', 'finished_at', 'created_at', 'updated_at'],
        [
          job(1, 'INGESTION', 'FAILED', 5, '/data/a', 100),
          job(2, 'INGESTION', 'SUCCEEDED', 5, '/data/b', 100),
          job(3, 'INGESTION', 'CANCELLED', 6, '/data/c', 10),
          job(4, 'EXPORT', 'FAILED', 5, '/data/d', 100),
          job(5, 'INGESTION', 'QUEUED', 5, '/data/e', null),
        ],
      );
      await insert(
        'ingestion_errors',
        ['job_id', 'line', 'message'],
        [
          [1, 7, 'bad email'],
          [1, 2, 'no identity'],
          [1, 12, 'too long'],
          [2, 3, 'other run'],
        ],
      );
      const max = Number.MAX_SAFE_INTEGER;
      const min = Number.MIN_SAFE_INTEGER;
      const read = async (runner: StatementRunner) => ({
        uploads: (await runner.all<{ upload: string }>(q('endedUploads'), [50])).map((r) => r.upload).sort(),
        runsDown: await runner.all(q('runsDown'), [1, 5, max, min, 10]),
        runsDownAfter: await runner.all(q('runsDown'), [1, 5, 5, min, 10]),
        runsUp: await runner.all(q('runsUp'), [1, 5, max, 1, 10]),
        runs: Number((await runner.get<{ n: unknown }>(q('countRuns'), [1, 5]))!.n),
        errorsUp: await runner.all(q('errorsUp'), [1, max, min, 2]),
        errorsUpAfter: await runner.all(q('errorsUp'), [1, max, 2, 5]),
        errorsDown: await runner.all(q('errorsDown'), [1, 12, min, 5]),
        errors: Number((await runner.get<{ n: unknown }>(q('countErrors'), [1]))!.n),
      });
      const a = await read(sqlite);
      const b = await read(postgres);
      expect(b).toEqual(a);
      expect(a).toEqual({
        uploads: ['/data/a'],
        runsDown: [{ id: 5 }, { id: 2 }, { id: 1 }],
        runsDownAfter: [{ id: 2 }, { id: 1 }],
        runsUp: [{ id: 2 }, { id: 5 }],
        runs: 3,
        errorsUp: [
          { line: 2, message: 'no identity' },
          { line: 7, message: 'bad email' },
        ],
        errorsUpAfter: [
          { line: 7, message: 'bad email' },
          { line: 12, message: 'too long' },
        ],
        errorsDown: [
          { line: 7, message: 'bad email' },
          { line: 2, message: 'no identity' },
        ],
        errors: 3,
      });
    } finally {
      sqlite.close();
    }
  });
});
