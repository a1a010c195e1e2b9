/**
 * Job updates made anywhere in the cluster reach this process's event bus
 * (src/domain/cluster/cluster-job-watcher.ts, pg migration `job_update_notify`): a job queued,
 * claimed by a node, its lease renewed with progress and its end — each published on the job's
 * topic and its sandbox's, in order. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import pino from 'pino';
import { expect, it } from 'vitest';
import { ClusterJobWatcher } from '../../src/domain/cluster/cluster-job-watcher.js';
import { claimLeasedJob, failHeldJob, renewJobLease } from '../../src/domain/cluster/leased-job.js';
import { insertJob, jobById } from '../../src/domain/jobs/job-store.js';
import { createSandbox } from '../../src/domain/sandboxes.js';
import { describeOnPostgres } from '../db/statements-harness.js';

describeOnPostgres('job updates across the cluster', 'cluster_job_watcher', (db) => {
  it('publishes every change of a job row, whoever made it', async () => {
    const seen: { topic: string; status: string; done: number }[] = [];
    const bus = {
      publishLocal: (topic: string, job: unknown) => {
        const j = job as { status: string; progressDone: number };
        seen.push({ topic, status: j.status, done: j.progressDone });
      },
    };
    const watcher = new ClusterJobWatcher({ url: db.url, store: db.conn, bus, log: pino({ level: 'silent' }) });
    await watcher.start();
    const until = async (n: number) => {
      for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 20));
    };
    try {
      const sandbox = (await createSandbox(db.conn, 'watched')).id;
      const job = await insertJob(db.conn, sandbox, 'EXPORT', { datasetId: 1 } as never);
      await until(2);
      // A node's work, straight on the pool as a node does it.
      const held = (await claimLeasedJob(db.conn.pool, 'EXPORT', 'node-a', 60_000))!;
      await until(4);
      expect(await renewJobLease(db.conn.pool, held, 'node-a', 60_000, { done: 7, total: 10 })).toBe('held');
      await until(6);
      expect(await failHeldJob(db.conn.pool, held, 'node-a', 'broken')).toBe(true);
      await until(8);
      expect(seen.filter((s) => s.topic === `job:${job.id}`).map((s) => s.status)).toEqual([
        'QUEUED',
        'PROCESSING',
        'PROCESSING',
        'FAILED',
      ]);
      expect(seen.filter((s) => s.topic === `jobs:${sandbox}`)).toHaveLength(4);
      expect(seen.filter((s) => s.topic === `job:${job.id}`)[2]).toMatchObject({ done: 7 });

      // A row touched after its job ended, and a state this process told already (its own queue's
      // publish), are not told again: a subscriber hears each state once.
      await db.conn.pool.query('UPDATE jobs SET updated_at = updated_at + 1, lease_owner = NULL WHERE id = $1', [
        job.id,
      ]);
      const other = await insertJob(db.conn, sandbox, 'EXPORT', { datasetId: 2 } as never);
      await until(10);
      watcher.announce((await jobById(db.conn, other.id))!);
      await new Promise((r) => setTimeout(r, 200));
      expect(seen.filter((s) => s.topic === `job:${job.id}`)).toHaveLength(4);
      expect(seen.filter((s) => s.topic === `job:${other.id}`).map((s) => s.status)).toEqual(['QUEUED']);

      // States committed faster than a row can be read are each told: the notification carries
      // the row. One transaction's changes are told once, as it committed them.
      const fastHeld = (await claimLeasedJob(db.conn.pool, 'EXPORT', 'node-b', 60_000))!;
      const fast = { id: fastHeld.jobId };
      expect(fast.id).toBe(other.id);
      for (const done of [1, 2, 3]) await renewJobLease(db.conn.pool, fastHeld, 'node-b', 60_000, { done, total: 3 });
      const client = await db.conn.pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('UPDATE jobs SET progress_done = 4 WHERE id = $1', [fast.id]);
        await client.query('UPDATE jobs SET progress_done = 5 WHERE id = $1', [fast.id]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      const told = () => seen.filter((s) => s.topic === `job:${fast.id}`).map((s) => s.done);
      for (let i = 0; i < 100 && told().length < 6; i++) await new Promise((r) => setTimeout(r, 20));
      expect(told()).toEqual([0, 0, 1, 2, 3, 5]);

      // A row too large for a notification is told by its id and read.
      const big = { rows: 'x'.repeat(10_000) };
      await db.conn.pool.query('UPDATE jobs SET result = $1, progress_done = 6 WHERE id = $2', [
        JSON.stringify(big),
        fast.id,
      ]);
      for (let i = 0; i < 100 && told().length < 7; i++) await new Promise((r) => setTimeout(r, 20));
      expect(told()).toEqual([0, 0, 1, 2, 3, 5, 6]);
    } finally {
      await watcher.stop();
    }
  });
});
