/**
 * The job queue of a serving process on PostgreSQL: what the single-process runner's `enqueue`
 * and `cancel` are for the API (job-runner.ts), with the work done by the cluster's nodes
 * (cluster-node.ts) rather than by this process's worker threads. Queueing is the shared
 * `queueJob` (one unit on the pool); the nodes are woken with NOTIFY once it has committed.
 * Cancelling goes through `cancelClusterJob`, whose row lock orders it with a node's claim.
 * The queued and cancelled jobs are told at once, as the runner publishes them, through this
 * process's job watcher (`announce`), which tells its subscribers each state once: when
 * PostgreSQL then announces the same change, the watcher finds it told already, and every
 * other serving process tells its own subscribers (cluster-job-watcher.ts).
 */
import type { PgConnection } from '../../db/pg/index.js';
import type { Store } from '../../db/store.js';
import { conflict, notFound } from '../errors.js';
import { type JobPrepare, type JobQueue, queueJob } from '../jobs/job-queue.js';
import { type Job, type JobOf, jobById, type NewJobOptions } from '../jobs/job-store.js';
import type { TypedJobKind } from '../jobs/job-types.js';
import { cancelClusterJob } from './cluster-cancel.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';

export class ClusterJobQueue implements JobQueue {
  constructor(private readonly deps: { store: PgConnection; announce: (job: Job) => void }) {}

  /** Creates a QUEUED job (prepare checks and builds its input in the same unit) and wakes the nodes. */
  async enqueue<K extends TypedJobKind>(
    conn: Store,
    sandboxId: number,
    kind: K,
    prepare: JobPrepare<K>,
    options: NewJobOptions = {},
  ): Promise<JobOf<K>> {
    const { job, first } = await queueJob(conn, sandboxId, kind, prepare, options);
    if (first) this.deps.announce(first);
    this.deps.announce(job);
    await this.deps.store.pool.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(job.id)]);
    return job;
  }

  /**
   * Cancels a job: a queued one at once, a running one once its node next renews its lease.
   * CONFLICT once it has finished. The job queued to run first for it, if still going, too.
   */
  async cancel(id: number): Promise<Job> {
    const { store } = this.deps;
    const outcome = await cancelClusterJob(store.pool, id);
    if (!outcome) throw notFound(`No job with id ${id}`);
    if (outcome.changed.length === 0) {
      throw conflict(`The job has already finished (${outcome.before}); there is nothing to cancel`, {
        status: outcome.before,
      });
    }
    const changed: Job[] = [];
    for (const { id: changedId } of outcome.changed) {
      const job = await jobById(store, changedId);
      if (job) {
        changed.push(job);
        this.deps.announce(job);
      }
    }
    return changed[0]!;
  }
}
