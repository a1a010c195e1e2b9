/**
 * Queueing a job, the part every runner shares: the job (and the job queued to run first for it,
 * if its `prepare` asks) inserted QUEUED in one unit, with the input `prepare` checked and built
 * through that unit's handle, so what it checked still holds when the job exists. The single-process
 * runner (job-runner.ts) and the cluster's queue (cluster/cluster-job-queue.ts) each then tell
 * their own workers.
 */
import type { Store } from '../../db/store.js';
import { type UnitOf, writeUnit } from '../../db/unit.js';
import { insertJob, type Job, type JobOf, type NewJobOptions } from './job-store.js';
import type { InputOf, TypedJobKind } from './job-types.js';

export interface JobChain {
  /**
   * Queues a job that must run first, for the job being created (an export's segment job), in
   * the same unit. The new job is claimed once that one has ended and fails unless it
   * succeeded; cancelling the new job cancels it too. At most one per job.
   */
  first<F extends TypedJobKind>(kind: F, input: InputOf<F>): Promise<JobOf<F>>;
}

/**
 * What the API asks of whichever runs jobs: the single-process runner (job-runner.ts) or, on
 * PostgreSQL, the cluster's queue (cluster/cluster-job-queue.ts). The job kinds' API functions
 * queue and cancel through this and never know which.
 */
export interface JobQueue {
  /**
   * Creates a QUEUED job: `prepare` checks and builds its input inside the same unit as the
   * insert (through its `tx`), so what it checked still holds when the job exists; a
   * `DomainError` it throws leaves nothing behind. `conn` is the caller's: the database, or the
   * handle of the unit it runs in (a schedule's tick), of which the job's unit is a savepoint.
   */
  enqueue<K extends TypedJobKind>(
    conn: Store,
    sandboxId: number,
    kind: K,
    prepare: JobPrepare<K>,
    options?: NewJobOptions,
  ): Promise<JobOf<K>>;
  /**
   * Cancels a job: a queued one at once, a running one soon after. CONFLICT once it has
   * finished. The job queued to run first for it, if still going, is cancelled too.
   */
  cancel(id: number): Promise<Job>;
}

/** What `prepare` gets: the chain, and the unit's handle (on the caller's database). */
export type JobPrepare<K extends TypedJobKind, S extends Store = Store> = (
  chain: JobChain,
  tx: UnitOf<S>,
) => InputOf<K> | Promise<InputOf<K>>;

/** Inserts the job QUEUED (and its first job, if asked for) in one unit; returns both. */
export async function queueJob<K extends TypedJobKind, S extends Store>(
  conn: S,
  sandboxId: number,
  kind: K,
  prepare: JobPrepare<K, S>,
  options: NewJobOptions = {},
): Promise<{ job: JobOf<K>; first?: Job }> {
  const queued: { first?: Job } = {};
  const job = await writeUnit(conn, async (tx) => {
    const chain: JobChain = {
      first: async (firstKind, input) => {
        if (queued.first) throw new Error('a job waits for one job at most');
        // Started by the same trigger, but not one of a schedule's runs: the job it runs for is.
        const first = await insertJob(tx, sandboxId, firstKind, input, { trigger: options.trigger, now: options.now });
        queued.first = first;
        return first;
      },
    };
    const input = await prepare(chain, tx);
    return insertJob(tx, sandboxId, kind, input, { ...options, afterJobId: queued.first?.id ?? options.afterJobId });
  });
  return { job, first: queued.first };
}
