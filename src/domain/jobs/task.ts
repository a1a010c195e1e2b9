/**
 * The worker-thread side of a job kind: its task. A task reads and computes on its own
 * connection, reports progress, watches for a cancel, and ends by calling `finish` with the
 * writes that make its output visible; those writes and the job's SUCCEEDED state commit in one
 * transaction, so a crash never leaves output without a finished job or the reverse.
 */
import type { Connection } from '../../db/index.js';
import { Cancelled } from './cancelled.js';
import { finishJobSync, jobStatusSync } from './job-store.js';
import type { ProgressOf, ResultOf, TypedJobKind } from './job-types.js';

/** What a task gives `finish`'s write: the job's result and its final progress count. */
export interface Finished<R> {
  result: R;
  /** Units of work done in all (profiles, rows): the finished job's `done` and `total`. */
  units: number;
}

/** What a running task can do. */
export interface TaskContext<K extends TypedJobKind> {
  progress(payload: ProgressOf<K>): void;
  /** True once a cancel was asked for; a task checks it between chunks and throws `Cancelled`. */
  cancelled(): boolean;
  /**
   * Ends the job: runs `write` (the task's output: memberships, stored results) and marks the
   * job SUCCEEDED in the same IMMEDIATE transaction, unless a cancel got there first (then it
   * throws `Cancelled` and nothing is written). Call it once, last.
   */
  finish(write: () => Finished<ResultOf<K>>): void;
}

/**
 * A kind's task: the default export of the module a kind names as its `task`. The plan is
 * whatever the kind's `plan` fixed on the main thread (plain data: it crosses to the thread).
 */
export type JobTask<K extends TypedJobKind, Plan> = (conn: Connection, plan: Plan, ctx: TaskContext<K>) => void;

/** The hooks the caller of a task provides (the job worker, or a benchmark running it in-thread). */
interface TaskHooks<K extends TypedJobKind> {
  progress(payload: ProgressOf<K>): void;
  cancelled(): boolean;
}

/**
 * Runs a task for a PROCESSING job to its end and returns the job's result: what the job
 * worker does with each task, and what benchmarks call to time a task without a thread.
 */
export function runJobTask<K extends TypedJobKind, Plan>(
  conn: Connection,
  jobId: number,
  task: JobTask<K, Plan>,
  plan: Plan,
  hooks: TaskHooks<K>,
): ResultOf<K> {
  let finished: { result: ResultOf<K> } | undefined;
  task(conn, plan, {
    progress: hooks.progress,
    cancelled: hooks.cancelled,
    finish(write) {
      if (finished) throw new Error(`job ${jobId}: a task finishes once`);
      if (hooks.cancelled()) throw new Cancelled();
      // Through the write gate: the main thread waits for this transaction without blocking (db/write-gate.ts).
      // A synchronous transaction, not a unit (db/unit.ts): it ends the task's synchronous run on the
      // task's own connection (a job worker's, or `segql import`'s), where nothing else waits to write;
      // on PostgreSQL a cluster job writes its own results (src/domain/cluster/).
      finished = conn.writeGate.runBlocking(() =>
        conn.sqlite
          .transaction(() => {
            // A cancel that reached the database before this transaction wins; one after it finds the job finished.
            if (jobStatusSync(conn, jobId) !== 'PROCESSING' || hooks.cancelled()) throw new Cancelled();
            const { result, units } = write();
            if (!finishJobSync(conn, jobId, result, units, Date.now())) throw new Cancelled();
            return { result };
          })
          .immediate(),
      );
    },
  });
  if (!finished) throw new Error(`job ${jobId}: its task returned without finishing`);
  return finished.result;
}
