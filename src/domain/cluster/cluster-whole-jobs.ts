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
import { clientStore } from '../../db/pg/index.js';
import type { Store } from '../../db/store.js';
import { Cancelled } from '../jobs/cancelled.js';
import { failureFields, JobFailure } from '../jobs/job-failure.js';
import type { JobKind, JobResult } from '../jobs/job-types.js';
import {
  cancelHeldJob,
  claimLeasedJob,
  failHeldJob,
  LeaseBeat,
  type HeldJob as LeasedJob,
  requeueExpiredJobs,
} from './leased-job.js';
import { LeaseLost } from './range-queue.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** A Store on one client, inside its transaction (db/pg `clientStore`). */
export function storeOn(client: pg.ClientBase | pg.Pool): Store {
  return clientStore(client);
}

/** A whole job this node holds: attempt `attempts` is its lease's number; `input.now` is pinned. */
export type HeldJob<Input = Record<string, unknown>> = LeasedJob<Input & { now: number }>;

/** Takes the oldest queued job of one of `kinds` for `node`, under a lease (leased-job.ts). */
export async function claimWholeJob(
  db: Queryable,
  kinds: readonly JobKind[],
  node: string,
  leaseMs: number,
  now = Date.now(),
): Promise<HeldJob | undefined> {
  if (kinds.length === 0) return undefined;
  return claimLeasedJob<Record<string, unknown> & { now: number }>(db, kinds, node, leaseMs, now);
}

/** Puts every job of `kinds` whose lease has passed back in the queue (leased-job.ts). */
export async function requeueExpiredWholeJobs(
  db: Queryable,
  kinds: readonly JobKind[],
  now = Date.now(),
): Promise<{ jobId: number; kind: JobKind; status: 'QUEUED' | 'FAILED' | 'CANCELLED' }[]> {
  return (await requeueExpiredJobs(db, kinds, 'job', now)).map(({ jobId, kind, status }) => ({ jobId, kind, status }));
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
  let progress: WholeJobProgress = { done: 0, total: null };
  const beat = new LeaseBeat(pool, client, held, settings.node, settings.leaseMs, () => progress);
  const lease: Lease = {
    check: () => beat.check(),
    progress(next, now = false) {
      progress = next;
      if (now) beat.renewNow();
      else beat.progressed();
    },
  };
  let clean = false;
  try {
    const outcome = await work(client, lease);
    // The final write must not meet a cancel meant for the reading: the beat stops first. The
    // lease is still checked, by the write itself.
    await beat.stop();
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
    await beat.stop();
    if (beat.lease === 'lost' || err instanceof LeaseLost) return 'lost';
    if (beat.lease === 'cancelling' || err instanceof Cancelled) {
      await cancelHeldJob(pool, held, settings.node);
      return 'cancelled';
    }
    const failure = failureFields(err);
    if (err instanceof FailWith) {
      // On the run's own client: what the failure writes may read its session's temporary tables.
      const failed = await failHeldJob(client, held, settings.node, failure, err.write);
      clean = true;
      return failed ? 'failed' : 'lost';
    }
    const other = await pool.connect();
    let broken = true;
    try {
      const failed = await failHeldJob(other, held, settings.node, failure);
      broken = false;
      return failed ? 'failed' : 'lost';
    } finally {
      other.release(broken);
    }
  } finally {
    await beat.stop();
    // A connection a cancel may have reached (or that failed mid-transaction) is closed, not reused.
    client.release(!clean);
  }
}

/**
 * A failure that still writes something (in the transaction that fails the job, if the lease
 * holds), and may leave a result as any job failure may (jobs/job-failure.ts).
 */
export class FailWith extends JobFailure {
  constructor(
    message: string,
    readonly write: (client: pg.ClientBase) => Promise<void>,
    result?: JobResult,
  ) {
    super(message, result);
    this.name = 'FailWith';
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
export type WholeJobEvent =
  | { type: 'job-ended'; jobId: number; end: string }
  | { type: 'jobs-requeued'; jobs: { jobId: number; kind: JobKind; status: string }[] }
  | { type: 'error'; error: Error };

/**
 * A node's slot for whole jobs: one at a time, beside its range and its export. A node has two:
 * dry runs and ingestion runs in one, previews in the other.
 */
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
      const requeued = await requeueExpiredWholeJobs(pool, kinds, now);
      if (requeued.length > 0) emit({ type: 'jobs-requeued', jobs: requeued });
      for (const job of requeued) {
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
