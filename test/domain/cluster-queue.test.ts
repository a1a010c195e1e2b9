/**
 * The cluster's work queue on a real PostgreSQL: ranges claimed by racing nodes go to one node
 * each, leases that pass send ranges back, a node whose lease is gone can neither renew nor
 * complete, and a job splits into ranges that cover its profiles once. Skipped without
 * SEGQL_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cancelClusterJob } from '../../src/domain/cluster/cluster-cancel.js';
import { startQueuedSegmentJob } from '../../src/domain/cluster/cluster-segment-job.js';
import {
  claimRange,
  completeRange,
  type HeldRange,
  LeaseLost,
  MAX_RANGE_ATTEMPTS,
  renewRange,
  requeueExpiredRanges,
} from '../../src/domain/cluster/range-queue.js';
import { freshPgDatabase, type PgTestDatabase, pgAdminUrl } from '../db/pg-test-database.js';

describe.skipIf(!pgAdminUrl)('cluster work queue (PostgreSQL)', () => {
  let db: PgTestDatabase;
  const q = (sql: string, params: unknown[] = []) => db.conn.pool.query(sql, params);

  beforeAll(async () => {
    db = await freshPgDatabase('cluster_queue');
    await q(`INSERT INTO sandboxes (id, name, created_at) VALUES (1, 'prod', 0)`);
  }, 60_000);
  afterAll(async () => db?.drop());
  beforeEach(async () => {
    await q('DELETE FROM job_ranges; DELETE FROM job_range_results; DELETE FROM jobs; DELETE FROM profiles');
  });

  /** A PROCESSING job with `n` ranges of ten ids each. */
  async function jobWithRanges(n: number): Promise<number> {
    const { rows } = await q(
      `INSERT INTO jobs (sandbox_id, kind, status, input, created_at, updated_at) VALUES (1, 'SEGMENT', 'PROCESSING', '{}', 0, 0) RETURNING id`,
    );
    const jobId = rows[0].id as number;
    await q(
      `INSERT INTO job_ranges (job_id, range_no, sandbox_id, lo, hi, status, updated_at)
       SELECT $1, g, 1, g * 10 + 1, g * 10 + 10, 'QUEUED', 0 FROM generate_series(0, $2 - 1) AS g`,
      [jobId, n],
    );
    return jobId;
  }

  const rangeRow = async (jobId: number, rangeNo: number) =>
    (
      await q('SELECT status, lease_owner, attempts FROM job_ranges WHERE job_id = $1 AND range_no = $2', [
        jobId,
        rangeNo,
      ])
    ).rows[0];

  it('gives each range to exactly one of four racing nodes', async () => {
    await jobWithRanges(40);
    const claimed: string[] = [];
    await Promise.all(
      ['a', 'b', 'c', 'd'].map(async (node) => {
        for (;;) {
          const range = await claimRange(db.conn.pool, node, 60_000);
          if (!range) return;
          claimed.push(`${range.rangeNo}`);
        }
      }),
    );
    expect(claimed).toHaveLength(40);
    expect(new Set(claimed).size).toBe(40);
    const { rows } = await q(`SELECT count(*) AS n FROM job_ranges WHERE status = 'PROCESSING' AND attempts = 1`);
    expect(rows[0].n).toBe(40);
  });

  it('does not hand out ranges of a job that is not running', async () => {
    const jobId = await jobWithRanges(2);
    await q(`UPDATE jobs SET status = 'CANCELLED' WHERE id = $1`, [jobId]);
    expect(await claimRange(db.conn.pool, 'a', 60_000)).toBeUndefined();
  });

  it('takes back a range whose lease passed; the old holder can neither renew nor complete it', async () => {
    const jobId = await jobWithRanges(1);
    const first = (await claimRange(db.conn.pool, 'a', 60_000, 1_000))!;
    expect(first).toMatchObject({ jobId, rangeNo: 0, lo: 1, hi: 10, attempts: 1 });
    expect(await renewRange(db.conn.pool, first, 'a', 60_000, 5, 2_000)).toBe('held');
    // Nothing has expired yet at 50 s; at 70 s the renewed lease (until 62 s) has.
    expect(await requeueExpiredRanges(db.conn.pool, 50_000)).toBe(0);
    expect(await requeueExpiredRanges(db.conn.pool, 70_000)).toBe(1);
    expect(await rangeRow(jobId, 0)).toMatchObject({ status: 'QUEUED', lease_owner: null, attempts: 1 });
    const second = (await claimRange(db.conn.pool, 'b', 60_000, 71_000))!;
    expect(second.attempts).toBe(2);
    expect(await renewRange(db.conn.pool, first, 'a', 60_000, 9, 72_000)).toBe('lost');
    const result = { profiles: 10, failed: [], evaluationMs: 1, units: 10 };
    await expect(completeRange(db.conn.pool, first, 'a', result)).rejects.toBeInstanceOf(LeaseLost);
    // The same node name with the old attempt number is still the old lease.
    await expect(completeRange(db.conn.pool, { ...second, attempts: 1 }, 'b', result)).rejects.toBeInstanceOf(
      LeaseLost,
    );
    await completeRange(db.conn.pool, second, 'b', result);
    expect(await rangeRow(jobId, 0)).toMatchObject({ status: 'DONE', lease_owner: null, attempts: 2 });
  });

  it('sums the ranges’ progress into the job, renewed or done, and reports a cancel to the holder', async () => {
    const jobId = await jobWithRanges(3);
    const held: HeldRange[] = [];
    for (const node of ['a', 'b']) held.push((await claimRange(db.conn.pool, node, 60_000))!);
    await renewRange(db.conn.pool, held[0]!, 'a', 60_000, 7);
    await renewRange(db.conn.pool, held[1]!, 'b', 60_000, 4);
    await renewRange(db.conn.pool, held[0]!, 'a', 60_000, 9);
    expect((await q('SELECT progress_done FROM jobs WHERE id = $1', [jobId])).rows[0].progress_done).toBe(13);
    // A range that ends counts its whole work at once, whether or not it was ever renewed.
    const result = { profiles: 10, failed: [], evaluationMs: 1, units: 10 };
    await completeRange(db.conn.pool, held[0]!, 'a', result);
    expect((await q('SELECT progress_done FROM jobs WHERE id = $1', [jobId])).rows[0].progress_done).toBe(14);
    const third = (await claimRange(db.conn.pool, 'c', 60_000))!;
    await completeRange(db.conn.pool, third, 'c', result);
    expect((await q('SELECT progress_done FROM jobs WHERE id = $1', [jobId])).rows[0].progress_done).toBe(24);
    await cancelClusterJob(db.conn.pool, jobId);
    expect(await renewRange(db.conn.pool, held[1]!, 'b', 60_000, 5)).toBe('cancelling');
  });

  it(`fails the job once a range has been lost ${MAX_RANGE_ATTEMPTS} times`, async () => {
    const jobId = await jobWithRanges(2);
    let now = 0;
    // Range 1 stays with a live node; range 0 is lost by one node after another.
    const kept = (await claimRange(db.conn.pool, 'kept', 1_000_000, now))!;
    expect(kept.rangeNo).toBe(0);
    for (let i = 0; i < MAX_RANGE_ATTEMPTS; i++) {
      now += 10_000;
      const r = (await claimRange(db.conn.pool, `node-${i}`, 1_000, now))!;
      expect(r).toMatchObject({ rangeNo: 1, attempts: i + 1 });
      await requeueExpiredRanges(db.conn.pool, now + 5_000);
    }
    const job = (await q('SELECT status, error FROM jobs WHERE id = $1', [jobId])).rows[0];
    expect(job.status).toBe('FAILED');
    expect(job.error).toMatch(/Range 1 was lost 3 times/);
    expect((await q('SELECT count(*) AS n FROM job_ranges WHERE job_id = $1', [jobId])).rows[0].n).toBe(0);
  });

  it('splits a started job into ranges that cover every profile once, and two nodes start two jobs', async () => {
    await q(
      `INSERT INTO profiles (id, sandbox_id, attributes, created_at, updated_at)
       SELECT g, 1, '{}', 0, 0 FROM generate_series(1, 1000) AS g WHERE g % 7 <> 0`,
    );
    const input = JSON.stringify({ definitionIds: [], all: false, at: 5_000 });
    for (let i = 0; i < 2; i++) {
      await q(
        `INSERT INTO jobs (sandbox_id, kind, status, input, created_at, updated_at) VALUES (1, 'SEGMENT', 'QUEUED', $1, 0, 0)`,
        [input],
      );
    }
    const settings = { node: 'n', leaseMs: 1_000, rangeProfiles: 200, chunkSize: 100 };
    const started = await Promise.all([
      startQueuedSegmentJob(db.conn.pool, { ...settings, node: 'a' }),
      startQueuedSegmentJob(db.conn.pool, { ...settings, node: 'b' }),
    ]);
    expect(started.every((id) => typeof id === 'number')).toBe(true);
    expect(new Set(started).size).toBe(2);
    expect(await startQueuedSegmentJob(db.conn.pool, settings)).toBeUndefined();
    for (const jobId of started) {
      const ranges = (await q('SELECT lo, hi FROM job_ranges WHERE job_id = $1 ORDER BY range_no', [jobId])).rows.map(
        (r) => [Number(r.lo), Number(r.hi)] as const,
      );
      // 858 profiles at about 200 a range: five ranges, contiguous from the first id to the last.
      expect(ranges).toHaveLength(5);
      expect(ranges[0]![0]).toBe(1);
      expect(ranges.at(-1)![1]).toBe(1000);
      for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1] + 1);
      const counts = await Promise.all(
        ranges.map(
          async ([lo, hi]) =>
            (await q('SELECT count(*) AS n FROM profiles WHERE id BETWEEN $1 AND $2', [lo, hi])).rows[0].n as number,
        ),
      );
      expect(counts.reduce((a, b) => a + b, 0)).toBe(858);
      for (const n of counts) expect(Math.abs(n - 858 / 5)).toBeLessThanOrEqual(2);
      const job = (await q('SELECT status, input, progress_total FROM jobs WHERE id = $1', [jobId])).rows[0];
      expect(job.status).toBe('PROCESSING');
      // The plan and the instant are fixed at the start, for every range and any re-run.
      expect(job.input.now).toBe(5_000);
      expect(job.input.plan).toMatchObject({ jobId, sandboxId: 1, now: 5_000, definitions: [] });
    }
  });
});
