/**
 * Which of two states of one job is the later, for the publishers that tell subscribers a job's
 * states (the runner on SQLite, the job watcher on PostgreSQL). Each can come to hold a state
 * after a newer one was told: a progress write that waited for the write gate while a later one
 * went through, a row read after its notification where the next notification carries an older
 * row, a cancel told while the changes before it were still on their way. Told in that order,
 * a subscriber would see the job's progress go back or a cancelled job run again; dropped, it
 * sees the states in the order the job went through them (docs/api.md "Subscriptions").
 */
import type { Job } from './job-store.js';
import { isTerminal } from './job-types.js';

/** What the order looks at. */
export type JobStateMark = Pick<Job, 'status' | 'attempts' | 'progressDone'>;

const running = (status: Job['status']) => status === 'PROCESSING' || status === 'CANCELLING';

/**
 * Whether `next` is older than `told`, a state of the same job told already. A run's progress
 * only rises, and a claim counts a new run (`attempts`), which starts again from 0: a state of
 * an earlier run is older, one of a later run newer. Within one run an end is final, and a
 * cancel is never taken back. What this cannot order (a run requeued when its node's lease
 * passed: PROCESSING, then QUEUED of the same run) is not older.
 */
export function isOlderJobState(told: JobStateMark, next: JobStateMark): boolean {
  if (next.attempts !== told.attempts) return next.attempts < told.attempts;
  if (isTerminal(told.status)) return !isTerminal(next.status);
  if (!running(told.status) || !running(next.status)) return false;
  return next.progressDone < told.progressDone || (told.status === 'CANCELLING' && next.status === 'PROCESSING');
}

/**
 * Per job, the latest state told, forgetting the oldest past `max` jobs (a few thousand recent
 * ones cover every job anyone still watches). A publisher that also drops repeats keeps the
 * told state's own key beside it (`tell`'s second argument, read back by `keyOf`).
 */
export class ToldJobStates {
  private readonly told = new Map<number, JobStateMark & { key: string | undefined }>();

  constructor(private readonly max = 5_000) {}

  /** The key the job's last told state was recorded with. */
  keyOf(jobId: number): string | undefined {
    return this.told.get(jobId)?.key;
  }

  /** Records `job` as told and returns true, or returns false when it is older than the state told last. */
  tell(job: Pick<Job, 'id'> & JobStateMark, key?: string): boolean {
    const told = this.told.get(job.id);
    if (told && isOlderJobState(told, job)) return false;
    // Re-inserted: the map's order is the order jobs were last told in, oldest first.
    this.told.delete(job.id);
    this.told.set(job.id, { status: job.status, attempts: job.attempts, progressDone: job.progressDone, key });
    if (this.told.size > this.max) this.told.delete(this.told.keys().next().value!);
    return true;
  }
}
