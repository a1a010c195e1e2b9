/**
 * Cancelling a job on a cluster. Nodes share nothing but rows, so a cancel is a status the job
 * row takes and each party reads where it already looks: a QUEUED job is CANCELLED at once (no
 * node claims it any more); a running one turns CANCELLING, which the nodes holding its ranges or
 * the export see at their next lease renewal (cluster-segment-job.ts `runRange`,
 * cluster-export-job.ts `runClusterExport`, cluster-whole-jobs.ts `runWholeJob` for dry runs and
 * ingestion runs), and which ends CANCELLED by the holder, by the next sweep (`endJob` for a
 * segment job, `requeueExpiredExports` / `requeueExpiredWholeJobs` for a job whose node died).
 *
 * The rule of the single-process runner (job-runner.ts `cancel`) holds here too: the job queued
 * to run first for it (an `evaluateFirst` export's segment job), if still going, is cancelled
 * with it, in the same transaction.
 */
import type pg from 'pg';
import type { JobStatus } from '../jobs/job-types.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';

/** The kinds a cluster runs; a job of another kind has no node that would ever see its cancel. */
export const CLUSTER_JOB_KINDS = ['SEGMENT', 'EXPORT', 'PREVIEW', 'DEFINITION_CHANGE_PREVIEW', 'INGESTION'] as const;
export type ClusterJobKind = (typeof CLUSTER_JOB_KINDS)[number];

/** What a cancel found and left. */
export interface CancelOutcome {
  kind: ClusterJobKind;
  /** The job's status when the cancel reached it: a finished job (SUCCEEDED, FAILED, CANCELLED) is left alone. */
  before: JobStatus;
  /** Its status after: CANCELLED, CANCELLING, or `before` when it had finished. */
  after: JobStatus;
  /** Jobs this cancel changed, the job itself first (then the one queued to run first for it). */
  changed: { id: number; status: JobStatus }[];
}

/**
 * Asks a queued or running cluster job to stop, with the job queued to run first for it. Returns
 * undefined when there is no segment or export job `jobId` (in `sandboxId`, of `kind`, when given).
 */
export async function cancelClusterJob(
  pool: pg.Pool,
  jobId: number,
  options: { sandboxId?: number; kind?: ClusterJobKind; now?: number } = {},
): Promise<CancelOutcome | undefined> {
  const now = options.now ?? Date.now();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // The row lock orders this cancel with a node's claim of the same row: whichever commits
    // first, the other sees its status (a claim skips the locked row; a cancel after a claim
    // finds PROCESSING and asks for CANCELLING).
    const job = (
      await client.query<{ kind: ClusterJobKind; status: JobStatus; afterJobId: number | null }>(
        `SELECT kind, status, after_job_id AS "afterJobId" FROM jobs
         WHERE id = $1 AND kind = ANY($2::text[]) AND ($3::bigint IS NULL OR sandbox_id = $3)
         FOR UPDATE`,
        [jobId, options.kind ? [options.kind] : CLUSTER_JOB_KINDS, options.sandboxId ?? null],
      )
    ).rows[0];
    if (!job) {
      await client.query('ROLLBACK');
      return undefined;
    }
    if (job.status === 'SUCCEEDED' || job.status === 'FAILED' || job.status === 'CANCELLED') {
      await client.query('ROLLBACK');
      return { kind: job.kind, before: job.status, after: job.status, changed: [] };
    }
    const ids = job.afterJobId == null ? [jobId] : [jobId, job.afterJobId];
    const { rows } = await client.query<{ id: number; status: JobStatus }>(
      `UPDATE jobs SET status = CASE WHEN status = 'QUEUED' THEN 'CANCELLED' ELSE 'CANCELLING' END,
         finished_at = CASE WHEN status = 'QUEUED' THEN $1 ELSE finished_at END, updated_at = $1
       WHERE id = ANY($2::bigint[]) AND status IN ('QUEUED', 'PROCESSING')
       RETURNING id, status`,
      [now, ids],
    );
    // Nodes waiting on the poll learn of it now: a cancelling job's end, or an export whose first job ended.
    await client.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(jobId)]);
    await client.query('COMMIT');
    const changed = ids.flatMap((id) => rows.filter((r) => r.id === id));
    const after = changed.find((r) => r.id === jobId)?.status ?? job.status;
    return { kind: job.kind, before: job.status, after, changed };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
