/**
 * The statements of the cluster's work queue on PostgreSQL: a segment job split into profile-id
 * ranges (`job_ranges`), each taken by one node at a time with `FOR UPDATE SKIP LOCKED` and held
 * under a lease that node renews while it evaluates. A node that stops renewing (killed, paused,
 * cut off) loses the range once the lease has passed, and any node takes it again; a node that
 * lost its lease cannot mark the range done, because every write of a holder names the lease it
 * holds (owner and attempt). Nodes never wait for each other: a range or job another node has
 * locked is skipped, not waited for.
 */
import type pg from 'pg';
import type { FailedDefinition } from '../segment-jobs/segment-evaluation.js';

/** A range this node holds: attempt `attempts` is its lease's number. */
export interface HeldRange {
  jobId: number;
  rangeNo: number;
  sandboxId: number;
  lo: number;
  hi: number;
  attempts: number;
}

/**
 * Thrown where a holder's write finds its lease gone: the range (or the whole job, for an
 * export) has been or will be run by another node.
 */
export class LeaseLost extends Error {
  constructor(range: Pick<HeldRange, 'jobId' | 'attempts'> & { rangeNo?: number }) {
    const what = range.rangeNo === undefined ? '' : ` range ${range.rangeNo}`;
    super(`job ${range.jobId}${what}: lease of attempt ${range.attempts} lost`);
    this.name = 'LeaseLost';
  }
}

/** Times a range is taken before its job fails: a range that kills every node that runs it must not loop. */
export const MAX_RANGE_ATTEMPTS = 3;

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Takes the first waiting range of a running job for `node`, under a lease until `now + leaseMs`.
 * The inner select locks the row it picks and skips rows other nodes are taking at the same
 * moment, so two nodes never get the same range and neither waits (the partial index
 * `job_ranges_queued` keeps the scan to waiting rows).
 */
export async function claimRange(db: Queryable, node: string, leaseMs: number, now = Date.now()) {
  const { rows } = await db.query<HeldRange>(
    `UPDATE job_ranges AS r SET status = 'PROCESSING', lease_owner = $1, lease_until = $2, attempts = r.attempts + 1, updated_at = $3
     WHERE (r.job_id, r.range_no) = (
       SELECT q.job_id, q.range_no FROM job_ranges AS q
       WHERE q.status = 'QUEUED' AND EXISTS (SELECT 1 FROM jobs AS j WHERE j.id = q.job_id AND j.status = 'PROCESSING')
       ORDER BY q.job_id, q.range_no LIMIT 1 FOR UPDATE OF q SKIP LOCKED)
     RETURNING r.job_id AS "jobId", r.range_no AS "rangeNo", r.sandbox_id AS "sandboxId", r.lo, r.hi, r.attempts`,
    [node, now + leaseMs, now],
  );
  return rows[0] as HeldRange | undefined;
}

/** What renewing a lease found. */
export type LeaseState = 'held' | 'lost' | 'cancelling';

/**
 * Extends the lease of a range `node` holds and records how far it is; the job's progress is the
 * sum of its ranges'. 'lost' when the lease had already passed and the range went back to the
 * queue (or to another node); 'cancelling' when the job is being cancelled.
 */
export async function renewRange(
  db: Queryable,
  range: HeldRange,
  node: string,
  leaseMs: number,
  progressDone: number,
  now = Date.now(),
): Promise<LeaseState> {
  // One round trip: the CTE renews the range, the outer update sums the job's progress. The
  // outer sum reads the ranges as they were before the CTE (PostgreSQL shows a statement's own
  // CTE writes to no other part of it), hence "+ new − old" for this range. That snapshot may miss
  // another node's renewal committed meanwhile (READ COMMITTED re-reads the job row, not the sum),
  // so the job's progress is never taken below what it already says: subscribers see it rise.
  // A range re-run after a lost lease counts from 0 again without the job's figure falling back.
  const { rows } = await db.query<{ status: string }>(
    `WITH renewed AS (
       UPDATE job_ranges SET lease_until = $1, progress_done = $2, updated_at = $3
       WHERE job_id = $4 AND range_no = $5 AND status = 'PROCESSING' AND lease_owner = $6 AND attempts = $7
       RETURNING job_id)
     UPDATE jobs SET progress_done = GREATEST(progress_done,
         (SELECT coalesce(sum(progress_done), 0) FROM job_ranges WHERE job_id = $4) + $2
         - (SELECT progress_done FROM job_ranges WHERE job_id = $4 AND range_no = $5)), updated_at = $3
     WHERE id = (SELECT job_id FROM renewed)
     RETURNING status`,
    [now + leaseMs, progressDone, now, range.jobId, range.rangeNo, node, range.attempts],
  );
  const status = rows[0]?.status;
  if (status === undefined) return 'lost';
  return status === 'CANCELLING' ? 'cancelling' : 'held';
}

/** What a range's evaluation found, as its job's final write needs it. */
export interface RangeResult {
  profiles: number;
  failed: FailedDefinition[];
  evaluationMs: number;
  /** Units of work: profiles × definitions. */
  units: number;
}

/**
 * Marks a held range DONE, in the transaction that stages its verdicts: if the lease is gone the
 * range belongs to another attempt, so this throws `LeaseLost` and the caller rolls back. The
 * range's work is added to its job's progress here too: a range shorter than a renewal interval
 * is never renewed, and a job of such ranges would otherwise report none until it ended.
 */
export async function completeRange(
  db: Queryable,
  range: HeldRange,
  node: string,
  result: RangeResult,
  now = Date.now(),
): Promise<void> {
  // As in renewRange, the outer sum sees the ranges as they were before the CTE's update.
  const { rowCount } = await db.query(
    `WITH done AS (
       UPDATE job_ranges SET status = 'DONE', lease_owner = NULL, lease_until = NULL, profiles = $1, failed = $2,
         evaluation_ms = $3, progress_done = $4, updated_at = $5
       WHERE job_id = $6 AND range_no = $7 AND status = 'PROCESSING' AND lease_owner = $8 AND attempts = $9
       RETURNING job_id)
     UPDATE jobs SET progress_done = GREATEST(progress_done,
         (SELECT coalesce(sum(progress_done), 0) FROM job_ranges WHERE job_id = $6) + $4
         - (SELECT progress_done FROM job_ranges WHERE job_id = $6 AND range_no = $7)), updated_at = $5
     WHERE id = (SELECT job_id FROM done)`,
    [
      result.profiles,
      JSON.stringify(result.failed),
      Math.round(result.evaluationMs),
      result.units,
      now,
      range.jobId,
      range.rangeNo,
      node,
      range.attempts,
    ],
  );
  if (rowCount !== 1) throw new LeaseLost(range);
}

/**
 * Gives a held range back after its evaluation failed (not a lost lease): it waits for another
 * attempt, or, after MAX_RANGE_ATTEMPTS, fails its job with the reason.
 */
export async function releaseFailedRange(
  db: Queryable,
  range: HeldRange,
  node: string,
  reason: string,
  now = Date.now(),
): Promise<void> {
  const { rowCount } = await db.query(
    `UPDATE job_ranges SET status = 'QUEUED', lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE job_id = $2 AND range_no = $3 AND status = 'PROCESSING' AND lease_owner = $4 AND attempts = $5`,
    [now, range.jobId, range.rangeNo, node, range.attempts],
  );
  if (rowCount === 1 && range.attempts >= MAX_RANGE_ATTEMPTS) {
    await failJob(db, range.jobId, `Range ${range.rangeNo} failed ${range.attempts} times: ${reason}`, now);
  }
}

/**
 * Puts every range whose lease has passed back in the queue, and fails the jobs of ranges that
 * have used all their attempts. Any node runs it now and then; returns how many went back.
 */
export async function requeueExpiredRanges(db: Queryable, now = Date.now()): Promise<number> {
  const { rows } = await db.query<{ jobId: number; rangeNo: number; attempts: number }>(
    `UPDATE job_ranges SET status = 'QUEUED', lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE status = 'PROCESSING' AND lease_until < $1
     RETURNING job_id AS "jobId", range_no AS "rangeNo", attempts`,
    [now],
  );
  for (const r of rows) {
    if (r.attempts >= MAX_RANGE_ATTEMPTS) {
      await failJob(db, r.jobId, `Range ${r.rangeNo} was lost ${r.attempts} times (its nodes stopped renewing)`, now);
    }
  }
  return rows.length;
}

/** Fails a running job and drops its ranges and staged verdicts (nothing of it reaches the memberships). */
export async function failJob(db: Queryable, jobId: number, error: string, now = Date.now()): Promise<void> {
  await db.query(
    `WITH failed AS (
       UPDATE jobs SET status = 'FAILED', error = $1, finished_at = $2, updated_at = $2, lease_owner = NULL, lease_until = NULL
       WHERE id = $3 AND status IN ('PROCESSING', 'CANCELLING') RETURNING id),
     ranges AS (DELETE FROM job_ranges WHERE job_id IN (SELECT id FROM failed))
     DELETE FROM job_range_results WHERE job_id IN (SELECT id FROM failed)`,
    [error, now, jobId],
  );
}

/** Jobs whose ranges are all DONE, or that are being cancelled: each waits for one node to end it. */
export async function jobsToEnd(db: Queryable): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>(
    `SELECT j.id FROM jobs AS j
     WHERE (j.status = 'PROCESSING' AND j.kind = 'SEGMENT'
            AND NOT EXISTS (SELECT 1 FROM job_ranges AS r WHERE r.job_id = j.id AND r.status <> 'DONE'))
        OR (j.status = 'CANCELLING' AND j.kind = 'SEGMENT')
     ORDER BY j.id`,
  );
  return rows.map((r) => r.id);
}
