/**
 * Jobs a cluster node runs whole, as one process runs them (docs/scale-out.md "Jobs across
 * nodes"): definition-change dry runs (cluster-dry-run.ts) and ingestion runs
 * (cluster-ingestion-run.ts). The queue's guarantees come from the job row, as for exports
 * (cluster-export-job.ts):
 *
 * 1. claimed by one node with `FOR UPDATE SKIP LOCKED`, under a lease (`lease_owner`,
 *    `lease_until`, `attempts` as the lease's number), the evaluation instant pinned in the input
 *    at the first claim (the `at` asked for, else now) and kept by every re-run;
 * 2. the lease renewed every third of the lease time with the job's progress (and the running
 *    result a kind keeps while it runs); a renewal that finds the lease gone, or a cancel asked
 *    for, cancels the node's running statement on the server (`pg_cancel_backend`);
 * 3. finished in one transaction that first locks the job row where the lease still holds: the
 *    kind's own writes, then the job SUCCEEDED with its result. A node whose lease passed finds
 *    nothing to lock and writes nothing.
 *
 * Any node's sweep puts a job whose lease passed back in the queue; the next attempt starts from
 * scratch. A job lost MAX_RANGE_ATTEMPTS times fails, as ranges and exports do.
 */
import type pg from 'pg';
import { ConnectionCache } from '../../db/connection-cache.js';
import { pgStatementRunner } from '../../db/pg/index.js';
import type { Store } from '../../db/store.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobKind } from '../jobs/job-types.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';
import { LeaseLost, type LeaseState, MAX_RANGE_ATTEMPTS } from './range-queue.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The statements of the catalogue on one client (inside its transaction), as a Store: the shared
 * asynchronous reads (a plan, an audience) take one. A cache of its own: nothing is kept across jobs.
 */
export function storeOn(client: pg.ClientBase | pg.Pool): Store {
  return { ...pgStatementRunner(client as pg.PoolClient), dialect: 'postgres', cache: new ConnectionCache() };
}

/** A whole job this node holds: attempt `attempts` is its lease's number; `input.now` is pinned. */
export interface HeldJob<Input = Record<string, unknown>> {
  jobId: number;
  sandboxId: number;
  kind: JobKind;
  input: Input & { now: number };
  attempts: number;
}

/**
 * Takes the oldest queued job of one of `kinds` for `node`, under a lease until `now + leaseMs`.
 * The inner select locks the row it picks and skips rows other nodes are taking at the same
 * moment (the partial index `jobs_queued` keeps the scan to waiting jobs), so two nodes never
 * get the same job and neither waits.
 */
export async function claimWholeJob(
  db: Queryable,
  kinds: readonly JobKind[],
  node: string,
  leaseMs: number,
  now = Date.now(),
): Promise<HeldJob | undefined> {
  if (kinds.length === 0) return undefined;
  const { rows } = await db.query<HeldJob>(
    `UPDATE jobs AS j SET status = 'PROCESSING', lease_owner = $1, lease_until = $2, attempts = j.attempts + 1,
       started_at = $3, updated_at = $3, finished_at = NULL, error = NULL, progress_done = 0,
       input = CASE WHEN j.input ? 'now' THEN j.input
                    ELSE j.input || jsonb_build_object('now', coalesce((j.input ->> 'at')::bigint, $3::bigint)) END
     WHERE j.id = (
       SELECT q.id FROM jobs AS q WHERE q.status = 'QUEUED' AND q.kind = ANY($4::text[])
         AND (q.after_job_id IS NULL OR EXISTS (SELECT 1 FROM jobs AS a WHERE a.id = q.after_job_id
              AND a.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')))
       ORDER BY q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING j.id AS "jobId", j.sandbox_id AS "sandboxId", j.kind, j.input, j.attempts`,
    [node, now + leaseMs, now, kinds],
  );
  return rows[0];
}

/**
 * Extends the lease of a job `node` holds and records its progress, and the running result when
 * the kind keeps one: 'lost' when the lease had passed, 'cancelling' when a cancel was asked for.
 */
export async function renewWholeJob(
  db: Queryable,
  held: HeldJob<unknown>,
  node: string,
  leaseMs: number,
  progress: WholeJobProgress,
  now = Date.now(),
): Promise<LeaseState> {
  const { rows } = await db.query<{ status: string }>(
    `UPDATE jobs SET lease_until = $1, progress_done = $2, progress_total = $3, updated_at = $4,
       result = coalesce($8::jsonb, result)
     WHERE id = $5 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $6 AND attempts = $7
     RETURNING status`,
    [
      now + leaseMs,
      progress.done,
      progress.total,
      now,
      held.jobId,
      node,
      held.attempts,
      progress.result === undefined ? null : JSON.stringify(progress.result),
    ],
  );
  const status = rows[0]?.status;
  if (status === undefined) return 'lost';
  return status === 'CANCELLING' ? 'cancelling' : 'held';
}

/**
 * Puts every job of `kinds` whose lease has passed back in the queue; one lost
 * MAX_RANGE_ATTEMPTS times fails, one being cancelled ends CANCELLED. Any node runs it now and
 * then; returns the jobs and what became of them.
 */
export async function requeueExpiredWholeJobs(
  db: Queryable,
  kinds: readonly JobKind[],
  now = Date.now(),
): Promise<{ jobId: number; kind: JobKind; status: 'QUEUED' | 'FAILED' | 'CANCELLED' }[]> {
  const { rows } = await db.query(
    `UPDATE jobs SET
       status = CASE WHEN status = 'CANCELLING' THEN 'CANCELLED' WHEN attempts >= $2 THEN 'FAILED' ELSE 'QUEUED' END,
       error = CASE WHEN status = 'PROCESSING' AND attempts >= $2
                    THEN 'The job was lost ' || attempts || ' times (its nodes stopped renewing their lease)' ELSE error END,
       finished_at = CASE WHEN status = 'CANCELLING' OR attempts >= $2 THEN $1 ELSE finished_at END,
       lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE kind = ANY($3::text[]) AND status IN ('PROCESSING', 'CANCELLING') AND lease_until < $1
     RETURNING id AS "jobId", kind, status`,
    [now, MAX_RANGE_ATTEMPTS, kinds],
  );
  if (rows.some((r) => r.status === 'QUEUED')) await db.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, 'whole']);
  return rows;
}

/** What a job reports as it runs: written with each renewal. */
export interface WholeJobProgress {
  done: number;
  total: number | null;
  /** The result to keep while the job runs (a dry run's running estimates), if the kind keeps one. */
  result?: unknown;
}

/** A running job's view of its lease. */
export interface Lease {
  /** Throws LeaseLost or Cancelled once a renewal found the lease gone or a cancel asked for. */
  check(): void;
  /** Records progress; `now` asks for a renewal at once rather than at the next beat. */
  progress(progress: WholeJobProgress, now?: boolean): void;
}

/** What a kind's run gives back: the final write, run inside the transaction that ends the job. */
export interface WholeJobOutcome<R> {
  /** The kind's own writes, then the job's result and its final progress count. */
  finish(client: pg.ClientBase): Promise<{ result: R; units: number }>;
  /** What to do once the job is recorded SUCCEEDED (an ingestion run removes its staged file). */
  after?(): void;
}

/** What became of a whole job this node held. */
export type WholeJobEnd = 'succeeded' | 'failed' | 'cancelled' | 'lost';

/**
 * Runs a job this node holds: `work` reads and computes on a client of its own (its
 * transactions are its own), and returns the final write, which runs in one transaction with
 * the job's SUCCEEDED state only if the lease still holds. A failure that is not a lost lease or
 * a cancel fails the job with its message, as in one process; `onFailure` may write what a
 * failed run still leaves (an ingestion run's errors) in the transaction that fails it.
 */
export async function runWholeJob<R>(
  pool: pg.Pool,
  held: HeldJob<unknown>,
  settings: { node: string; leaseMs: number },
  work: (client: pg.PoolClient, lease: Lease) => Promise<WholeJobOutcome<R>>,
): Promise<WholeJobEnd> {
  const client = await pool.connect();
  const pid = (client as unknown as { processID: number }).processID;
  let state = 'held' as LeaseState;
  let progress: WholeJobProgress = { done: 0, total: null };
  let renewing: Promise<void> = Promise.resolve();
  const renew = async () => {
    if (state !== 'held') return;
    try {
      state = await renewWholeJob(pool, held, settings.node, settings.leaseMs, progress);
    } catch {
      // A renewal that could not reach the database is tried again at the next beat; the lease decides.
      return;
    }
    if (state !== 'held') await pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {});
  };
  let beat: NodeJS.Timeout | undefined = setInterval(
    () => {
      renewing = renewing.then(renew);
    },
    Math.max(50, Math.floor(settings.leaseMs / 3)),
  );
  const stopBeat = async () => {
    if (beat) clearInterval(beat);
    beat = undefined;
    await renewing;
  };
  const lease: Lease = {
    check() {
      if (state === 'lost') throw new LeaseLost(held);
      if (state === 'cancelling') throw new Cancelled();
    },
    progress(next, now = false) {
      progress = next;
      if (now) renewing = renewing.then(renew);
    },
  };
  let clean = false;
  try {
    const outcome = await work(client, lease);
    // The final write must not meet a cancel meant for the reading: the beat stops first. The
    // lease is still checked, by the write itself.
    await stopBeat();
    lease.check();
    await client.query('BEGIN');
    const { rows } = await client.query<{ status: string }>(
      `SELECT status FROM jobs WHERE id = $1 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $2
         AND attempts = $3 FOR UPDATE`,
      [held.jobId, settings.node, held.attempts],
    );
    // A cancel that reached the job before this write wins, as in one process (jobs/task.ts).
    if (rows[0]?.status === 'CANCELLING') throw new Cancelled();
    if (rows[0]?.status !== 'PROCESSING') throw new LeaseLost(held);
    const { result, units } = await outcome.finish(client);
    const finishedAt = Date.now();
    await client.query(
      `UPDATE jobs SET status = 'SUCCEEDED', result = $1, finished_at = $2, updated_at = $2, progress_done = $3,
         progress_total = $3, lease_owner = NULL, lease_until = NULL WHERE id = $4`,
      [JSON.stringify(result), finishedAt, units, held.jobId],
    );
    await client.query('COMMIT');
    clean = true;
    outcome.after?.();
    return 'succeeded';
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    await stopBeat();
    if (state === 'lost' || err instanceof LeaseLost) return 'lost';
    if (state === 'cancelling' || err instanceof Cancelled) {
      await pool.query(
        `UPDATE jobs SET status = 'CANCELLED', finished_at = $1, updated_at = $1, lease_owner = NULL, lease_until = NULL
         WHERE id = $2 AND status = 'CANCELLING' AND lease_owner = $3 AND attempts = $4`,
        [Date.now(), held.jobId, settings.node, held.attempts],
      );
      return 'cancelled';
    }
    const reason = err instanceof Error ? err.message : String(err);
    if (err instanceof FailWith) {
      // On the run's own client: what the failure writes may read its session's temporary tables.
      const failed = await failHeldJob(client, held, settings.node, reason, err.write);
      clean = true;
      return failed ? 'failed' : 'lost';
    }
    const other = await pool.connect();
    let broken = true;
    try {
      const failed = await failHeldJob(other, held, settings.node, reason);
      broken = false;
      return failed ? 'failed' : 'lost';
    } finally {
      other.release(broken);
    }
  } finally {
    await stopBeat();
    // A connection a cancel may have reached (or that failed mid-transaction) is closed, not reused.
    client.release(!clean);
  }
}

/** A failure that still writes something (in the transaction that fails the job, if the lease holds). */
export class FailWith extends Error {
  constructor(
    message: string,
    readonly write: (client: pg.ClientBase) => Promise<void>,
  ) {
    super(message);
    this.name = 'FailWith';
  }
}

/** Fails a job this node holds, with `write` in the same transaction; false if its lease was gone. */
async function failHeldJob(
  client: pg.ClientBase,
  held: HeldJob<unknown>,
  node: string,
  error: string,
  write?: (client: pg.ClientBase) => Promise<void>,
): Promise<boolean> {
  try {
    await client.query('BEGIN');
    const now = Date.now();
    const { rowCount } = await client.query(
      `UPDATE jobs SET status = 'FAILED', error = $1, finished_at = $2, updated_at = $2, lease_owner = NULL, lease_until = NULL
       WHERE id = $3 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $4 AND attempts = $5`,
      [error, now, held.jobId, node, held.attempts],
    );
    if (rowCount === 1 && write) await write(client);
    await client.query('COMMIT');
    return rowCount === 1;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** How a node runs one kind of whole job it holds. */
export type WholeJobRunner = (
  pool: pg.Pool,
  held: HeldJob<unknown>,
  settings: { node: string; leaseMs: number },
) => Promise<WholeJobEnd>;

/** The kinds a node runs in its whole-job slot, and the housekeeping they need now and then. */
export interface WholeJobKinds {
  runners: Partial<Record<JobKind, WholeJobRunner>>;
  /** Run at the node's first sweep and once a minute after (ingestion: the uploads of ended runs). */
  housekeeping?: (store: Store, now: number) => Promise<void>;
}

/** How often a node runs its kinds' housekeeping, as the single-process runner sweeps its kinds. */
const HOUSEKEEPING_MS = 60_000;

/** What a node's whole-job slot reports (the node passes its own events through). */
export type WholeJobEvent = { type: 'job-ended'; jobId: number; end: string } | { type: 'error'; error: Error };

/** A node's slot for whole jobs (dry runs, ingestion runs): one at a time, beside its range and its export. */
export interface WholeJobSlot {
  /** Puts back what passed its lease (any node's sweep). */
  sweep(now: number): Promise<void>;
  /** Claims a job when the slot is free and starts it without waiting for it; true when it took one. */
  take(): Promise<boolean>;
  /** The job in hand, if any, settled. */
  settled(): Promise<void>;
}

/**
 * The slot the node loop calls (cluster-node.ts): `runners` says which kinds this node runs
 * (ingestion runs only with a data directory), `housekeeping` what its sweep also does. A job ending calls `woken`, so the loop looks for
 * the next one at once.
 */
export function wholeJobSlot(
  pool: pg.Pool,
  settings: { node: string; leaseMs: number },
  { runners, housekeeping }: WholeJobKinds,
  emit: (event: WholeJobEvent) => void,
  woken: () => void,
): WholeJobSlot {
  const kinds = Object.keys(runners) as JobKind[];
  let lastHousekeeping = Number.NEGATIVE_INFINITY;
  let running: Promise<void> | undefined;
  const run = async (held: HeldJob) => {
    try {
      const end = await runners[held.kind]!(pool, held, settings);
      if (end !== 'lost') emit({ type: 'job-ended', jobId: held.jobId, end });
    } catch (err) {
      emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    } finally {
      running = undefined;
      woken();
    }
  };
  return {
    async sweep(now) {
      if (housekeeping && now - lastHousekeeping >= HOUSEKEEPING_MS) {
        lastHousekeeping = now;
        await housekeeping(storeOn(pool), now);
      }
      for (const job of await requeueExpiredWholeJobs(pool, kinds, now)) {
        if (job.status !== 'QUEUED') emit({ type: 'job-ended', jobId: job.jobId, end: job.status.toLowerCase() });
      }
    },
    async take() {
      if (running !== undefined) return false;
      const held = await claimWholeJob(pool, kinds, settings.node, settings.leaseMs);
      if (!held) return false;
      // Not awaited: the job runs in its slot while the loop goes on.
      running = run(held);
      return true;
    },
    async settled() {
      await running;
    },
  };
}
