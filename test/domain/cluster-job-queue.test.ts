/**
 * The job queue a serving process on PostgreSQL uses (src/domain/cluster/cluster-job-queue.ts):
 * a job and the job queued to run first for it are inserted in one unit and published, the
 * nodes are woken with NOTIFY, a refused `prepare` leaves nothing, and cancels go through the
 * cluster's own (queued: CANCELLED with its first job; claimed: CANCELLING; finished: CONFLICT).
 * Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { ClusterJobQueue } from '../../src/domain/cluster/cluster-job-queue.js';
import { WORK_CHANNEL } from '../../src/domain/cluster/cluster-segment-job.js';
import { claimLeasedJob } from '../../src/domain/cluster/leased-job.js';
import { badInput } from '../../src/domain/errors.js';
import { jobById, listJobs } from '../../src/domain/jobs/job-store.js';
import { createSandbox } from '../../src/domain/sandboxes.js';
import { describeOnPostgres } from '../db/statements-harness.js';

describeOnPostgres('the cluster job queue', 'cluster_job_queue', (db) => {
  it('queues, wakes the nodes, publishes, and cancels through the cluster', async () => {
    const published: { id: number; status: string }[] = [];
    const queue = new ClusterJobQueue({
      store: db.conn,
      announce: ({ id, status }) => published.push({ id, status }),
    });
    const sandbox = (await createSandbox(db.conn, 'queue')).id;
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const woken: string[] = [];
    listener.on('notification', (n) => woken.push(n.payload ?? ''));
    await listener.query(`LISTEN ${WORK_CHANNEL}`);
    try {
      const input = { definitionIds: [1] } as never;
      const job = await queue.enqueue(db.conn, sandbox, 'EXPORT', async (chain) => {
        await chain.first('SEGMENT', input);
        return input;
      });
      expect(job).toMatchObject({ kind: 'EXPORT', status: 'QUEUED', sandboxId: sandbox });
      const first = (await jobById(db.conn, job.afterJobId!))!;
      expect(first).toMatchObject({ kind: 'SEGMENT', status: 'QUEUED' });
      expect(published.map((p) => [p.id, p.status])).toEqual([
        [first.id, 'QUEUED'],
        [job.id, 'QUEUED'],
      ]);
      for (let i = 0; i < 50 && !woken.includes(String(job.id)); i++) await new Promise((r) => setTimeout(r, 20));
      expect(woken).toContain(String(job.id));

      // A refused prepare leaves no job behind, not even the first one it queued.
      await expect(
        queue.enqueue(db.conn, sandbox, 'EXPORT', async (chain) => {
          await chain.first('SEGMENT', input);
          throw badInput('no', 'input');
        }),
      ).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
      expect((await listJobs(db.conn, sandbox, {}, { first: 10 })).items).toHaveLength(2);

      // Cancelling the export cancels the segment job queued for it.
      published.length = 0;
      expect(await queue.cancel(job.id)).toMatchObject({ id: job.id, status: 'CANCELLED' });
      expect((await jobById(db.conn, first.id))!.status).toBe('CANCELLED');
      expect(published.map((p) => [p.id, p.status])).toEqual([
        [job.id, 'CANCELLED'],
        [first.id, 'CANCELLED'],
      ]);
      await expect(queue.cancel(job.id)).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(queue.cancel(999_999)).rejects.toMatchObject({ code: 'NOT_FOUND' });

      // A job a node holds is asked to stop: CANCELLING until the node sees it.
      const running = await queue.enqueue(db.conn, sandbox, 'SEGMENT', () => input);
      expect((await claimLeasedJob(db.conn.pool, 'SEGMENT', 'node-a', 60_000))?.jobId).toBe(running.id);
      expect(await queue.cancel(running.id)).toMatchObject({ id: running.id, status: 'CANCELLING' });
    } finally {
      await listener.end();
    }
  });
});
