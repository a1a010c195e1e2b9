/**
 * Statements by name, the job runner's start and claim (src/domain/jobs/job-runner.ts): both
 * texts re-queue and cancel what a crash left, list the queued kinds and pick the job to claim
 * alike. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { pgStatementRunner } from '../../src/db/pg/index.js';
import type { StatementRunner } from '../../src/db/statement.js';
import '../../src/domain/jobs/job-runner.js';
import { describeOnPostgres, insertRows, statementsOf } from './statements-harness.js';

describeOnPostgres('job runner statements on PostgreSQL', 'statements_job_runner', (pg) => {
  it('gives the same rows from both texts', async () => {
    const q = statementsOf('job-runner');
    const sqlite = openDatabase(':memory:');
    const postgres = pgStatementRunner(pg.conn.pool);
    try {
      const columns = [
        'id',
        'sandbox_id',
        'kind',
        'status',
        'input',
        'after_job_id',
        'attempts',
        'created_at',
        'updated_at',
      ];
      // Job 4 waits for job 1 (still PROCESSING at first), job 5 for job 2 (ended), job 6 for a job that is gone.
      await insertRows(sqlite, pg, 'jobs', columns, [
        [1, 1, 'SEGMENT', 'PROCESSING', '{}', null, 1, 10, 10],
        [2, 1, 'EXPORT', 'SUCCEEDED', '{}', null, 1, 20, 20],
        [3, 1, 'PREVIEW', 'CANCELLING', '{}', null, 0, 30, 30],
        [4, 1, 'EXPORT', 'QUEUED', '{}', 1, 2, 40, 40],
        [5, 1, 'EXPORT', 'QUEUED', '{}', 2, 0, 50, 50],
        [6, 1, 'SEGMENT', 'QUEUED', '{}', 99, 3, 60, 60],
        [7, 1, 'INGESTION', 'FAILED', '{}', null, 1, 70, 70],
      ]);
      const both = async <T>(f: (runner: StatementRunner) => Promise<T>) =>
        [await f(sqlite), await f(postgres)] as const;
      const read = (runner: StatementRunner) =>
        runner.all({
          sqlite: 'SELECT id, status, finished_at AS "finishedAt", updated_at AS "updatedAt" FROM jobs ORDER BY id',
          postgres: 'SELECT id, status, finished_at AS "finishedAt", updated_at AS "updatedAt" FROM jobs ORDER BY id',
          name: 'test.read',
        });

      const claimBefore = await both(async (r) => [
        await r.get(q('claimable'), ['EXPORT']),
        await r.get(q('claimable'), ['SEGMENT']),
        await r.get(q('claimable'), ['PREVIEW']),
      ]);
      expect(claimBefore[1]).toEqual(claimBefore[0]);
      // Job 4 waits for job 1, still PROCESSING: job 5 is the EXPORT to claim.
      expect(claimBefore[0]).toEqual([{ id: 5, attempts: 0 }, { id: 6, attempts: 3 }, undefined]);

      const changes = await both(async (r) => [
        await r.run(q('requeueProcessing'), [100]),
        await r.run(q('cancelCancelling'), [200, 201]),
      ]);
      expect(changes[1]).toEqual(changes[0]);
      expect(changes[0]).toEqual([{ changes: 1 }, { changes: 1 }]);
      const after = await both(read);
      expect(after[1]).toEqual(after[0]);
      expect(after[0].slice(0, 3)).toEqual([
        { id: 1, status: 'QUEUED', finishedAt: null, updatedAt: 100 },
        { id: 2, status: 'SUCCEEDED', finishedAt: null, updatedAt: 20 },
        { id: 3, status: 'CANCELLED', finishedAt: 200, updatedAt: 201 },
      ]);

      const kinds = await both((r) => r.all(q('queuedKinds')));
      expect(kinds[1]).toEqual(kinds[0]);
      expect(kinds[0]).toEqual([{ kind: 'EXPORT' }, { kind: 'SEGMENT' }]);

      // Job 1 is QUEUED now, so job 4 still waits for it; job 1 is the oldest SEGMENT.
      const claimAfter = await both(async (r) => [
        await r.get(q('claimable'), ['EXPORT']),
        await r.get(q('claimable'), ['SEGMENT']),
        await r.get(q('claimable'), ['INGESTION']),
      ]);
      expect(claimAfter[1]).toEqual(claimAfter[0]);
      expect(claimAfter[0]).toEqual([{ id: 5, attempts: 0 }, { id: 1, attempts: 1 }, undefined]);
    } finally {
      sqlite.close();
    }
  });
});
