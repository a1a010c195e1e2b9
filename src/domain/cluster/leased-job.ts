/**
 * A job one node runs whole under a lease (exports, previews, definition-change dry runs,
 * ingestion runs: docs/scale-out.md "Exports on a cluster"): claimed with `FOR UPDATE SKIP LOCKED`, its lease renewed every third of the lease
 * time with its progress, taken back by any node once the lease has passed (failed after
 * MAX_RANGE_ATTEMPTS losses, CANCELLED when a cancel was waiting), and ended only by the node
 * that still holds it — every write names the holder and its attempt. What differs per kind is
 * the work itself, and the kind's own final write.
 */
import type pg from 'pg';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobKind, JobResult } from '../jobs/job-types.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';
import { PROGRESS_MS } from './progress-cadence.js';
import { LeaseLost, type LeaseState, MAX_RANGE_ATTEMPTS } from './range-queue.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** A job a node holds: the attempt is part of its lease. */
export interface HeldJob<I = unknown> {
  jobId: number;
  sandboxId: number;
  kind: JobKind;
  input: I;
  attempts: number;
  /** The job that had to end before this one could start (an export's evaluate-first job). */
  afterJobId: number | null;
}

/**
 * Takes the oldest queued job of `kinds` whose first job (if any) has ended, for `node`, under a
 * lease until `now + leaseMs`: the inner select locks the row it picks and skips rows other nodes
 * are taking, so two nodes never get the same job and neither waits. The evaluation instant is
 * pinned at the first claim (the `at` asked for, else now) and kept by every re-run.
 */
export async function claimLeasedJob<I>(
  db: Queryable,
  kinds: JobKind | readonly JobKind[],
  node: string,
  leaseMs: number,
  now = Date.now(),
): Promise<HeldJob<I> | undefined> {
  const { rows } = await db.query<HeldJob<I>>(
    `UPDATE jobs AS j SET status = 'PROCESSING', lease_owner = $1, lease_until = $2, attempts = j.attempts + 1,
       started_at = $3, updated_at = $3, finished_at = NULL, error = NULL, progress_done = 0, result = NULL,
       input = CASE WHEN j.input ? 'now' THEN j.input
                    ELSE j.input || jsonb_build_object('now', coalesce((j.input ->> 'at')::bigint, $3::bigint)) END
     WHERE j.id = (
       SELECT q.id FROM jobs AS q
       WHERE q.status = 'QUEUED' AND q.kind = ANY($4::text[])
         AND (q.after_job_id IS NULL OR EXISTS (SELECT 1 FROM jobs AS a WHERE a.id = q.after_job_id AND a.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')))
       ORDER BY q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING j.id AS "jobId", j.sandbox_id AS "sandboxId", j.kind, j.input, j.attempts, j.after_job_id AS "afterJobId"`,
    [node, now + leaseMs, now, typeof kinds === 'string' ? [kinds] : kinds],
  );
  return rows[0];
}

/** What a renewal records: progress (null keeps what is stored) and a running result to keep, if any. */
export interface LeaseProgress {
  done: number | null;
  total: number | null;
  result?: unknown;
}

/**
 * Extends the lease of a job `node` holds and records its progress: 'lost' when the lease had
 * passed and the job went back to the queue (or to another node), 'cancelling' when a cancel was
 * asked for. A job being cancelled keeps the progress and running result it had when the cancel
 * came: what the node computed after it is not the job's any more.
 */
export async function renewJobLease(
  db: Queryable,
  held: Pick<HeldJob, 'jobId' | 'attempts'>,
  node: string,
  leaseMs: number,
  progress: LeaseProgress,
  now = Date.now(),
): Promise<LeaseState> {
  const { rows } = await db.query<{ status: string }>(
    `UPDATE jobs SET lease_until = $1, updated_at = $2,
       progress_done = CASE WHEN status = 'CANCELLING' THEN progress_done ELSE coalesce($3, progress_done) END,
       progress_total = CASE WHEN status = 'CANCELLING' THEN progress_total ELSE coalesce($4, progress_total) END,
       result = CASE WHEN status = 'CANCELLING' THEN result ELSE coalesce($5::jsonb, result) END
     WHERE id = $6 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $7 AND attempts = $8
     RETURNING status`,
    [
      now + leaseMs,
      now,
      progress.done,
      progress.total,
      progress.result === undefined ? null : JSON.stringify(progress.result),
      held.jobId,
      node,
      held.attempts,
    ],
  );
  const status = rows[0]?.status;
  if (status === undefined) return 'lost';
  return status === 'CANCELLING' ? 'cancelling' : 'held';
}

/**
 * Puts every job of `kinds` whose lease has passed back in the queue; one lost MAX_RANGE_ATTEMPTS
 * times fails, and one being cancelled ends CANCELLED. Any node runs it now and then; returns the
 * jobs and what became of them. `what` names the kind in the failure's words ("export").
 */
export async function requeueExpiredJobs<I>(
  db: Queryable,
  kinds: JobKind | readonly JobKind[],
  what: string,
  now = Date.now(),
): Promise<{ jobId: number; kind: JobKind; status: 'QUEUED' | 'FAILED' | 'CANCELLED'; sandboxId: number; input: I }[]> {
  const { rows } = await db.query(
    `UPDATE jobs SET
       status = CASE WHEN status = 'CANCELLING' THEN 'CANCELLED' WHEN attempts >= $2 THEN 'FAILED' ELSE 'QUEUED' END,
       error = CASE WHEN status = 'PROCESSING' AND attempts >= $2
                    THEN $4 || attempts || ' times (its nodes stopped renewing their lease)' ELSE error END,
       finished_at = CASE WHEN status = 'CANCELLING' OR attempts >= $2 THEN $1 ELSE finished_at END,
       lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE kind = ANY($3::text[]) AND status IN ('PROCESSING', 'CANCELLING') AND lease_until < $1
     RETURNING id AS "jobId", kind, status, sandbox_id AS "sandboxId", input`,
    [now, MAX_RANGE_ATTEMPTS, typeof kinds === 'string' ? [kinds] : kinds, `The ${what} was lost `],
  );
  if (rows.some((r) => r.status === 'QUEUED')) await db.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, what]);
  return rows;
}

/**
 * Fails a job this node holds (a failure that would repeat, as in one process); false if its
 * lease was gone. With `write`, what the failed run still leaves (an ingestion run's errors) is
 * written in the same transaction, on `db`, which must then be a client of its own.
 */
export async function failHeldJob<D extends Queryable>(
  db: D,
  held: Pick<HeldJob, 'jobId' | 'attempts'>,
  node: string,
  failure: string | { error: string; result?: JobResult },
  write?: (client: D) => Promise<void>,
): Promise<boolean> {
  const { error, result } = typeof failure === 'string' ? { error: failure, result: undefined } : failure;
  const fail = async () => {
    const now = Date.now();
    // A failure without a result of its own keeps the running result its renewals wrote.
    const { rowCount } = await db.query(
      `UPDATE jobs SET status = 'FAILED', error = $1, finished_at = $2, updated_at = $2, lease_owner = NULL, lease_until = NULL,
         result = COALESCE($6::jsonb, result)
       WHERE id = $3 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $4 AND attempts = $5`,
      [error, now, held.jobId, node, held.attempts, result === undefined ? null : JSON.stringify(result)],
    );
    return rowCount === 1;
  };
  if (!write) return fail();
  await db.query('BEGIN');
  try {
    const failed = await fail();
    if (failed) await write(db);
    await db.query('COMMIT');
    return failed;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Ends a job this node holds as CANCELLED, the cancel having been asked for while it ran. */
export async function cancelHeldJob(
  db: Queryable,
  held: Pick<HeldJob, 'jobId' | 'attempts'>,
  node: string,
): Promise<void> {
  const now = Date.now();
  await db.query(
    `UPDATE jobs SET status = 'CANCELLED', finished_at = $1, updated_at = $1, lease_owner = NULL, lease_until = NULL
     WHERE id = $2 AND status = 'CANCELLING' AND lease_owner = $3 AND attempts = $4`,
    [now, held.jobId, node, held.attempts],
  );
}

/**
 * The lease's heartbeat while a node runs a job on `client`: a renewal every third of the lease
 * time with the job's progress; when one finds the lease lost or a cancel asked for, the
 * statement running on `client` is cancelled on the server (pg_cancel_backend), and `check()`
 * throws LeaseLost or Cancelled at the work's next step.
 */
export class LeaseBeat {
  private state: LeaseState = 'held';
  private lastRenewal = performance.now();
  private renewing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly pid: number;

  constructor(
    private readonly pool: pg.Pool,
    client: pg.PoolClient,
    private readonly held: Pick<HeldJob, 'jobId' | 'attempts'>,
    private readonly node: string,
    private readonly leaseMs: number,
    private readonly progress: () => LeaseProgress,
  ) {
    this.pid = (client as unknown as { processID: number }).processID;
    this.timer = setInterval(() => this.renewNow(), Math.max(50, Math.floor(leaseMs / 3)));
  }

  /** Where the lease stands, as the last renewal found it. */
  get lease(): LeaseState {
    return this.state;
  }

  /** A renewal now (after the beats already queued), e.g. once a total is known. */
  renewNow(): void {
    this.lastRenewal = performance.now();
    this.renewing = this.renewing.then(() => this.renew());
  }

  /** Progress was made: a renewal carries it once PROGRESS_MS have passed since the last one. */
  progressed(): void {
    if (performance.now() - this.lastRenewal >= PROGRESS_MS) this.renewNow();
  }

  private async renew(): Promise<void> {
    if (this.state !== 'held') return;
    try {
      this.state = await renewJobLease(this.pool, this.held, this.node, this.leaseMs, this.progress());
    } catch {
      // A renewal that could not reach the database is tried again at the next beat; the lease decides.
      return;
    }
    if (this.state !== 'held') await this.pool.query('SELECT pg_cancel_backend($1)', [this.pid]).catch(() => {});
  }

  /** Throws when the lease is gone or a cancel was asked for. */
  check(): void {
    if (this.state === 'lost') throw new LeaseLost(this.held);
    if (this.state === 'cancelling') throw new Cancelled();
  }

  /** No more renewals; resolves once the one under way has ended. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.renewing;
  }
}
