import type { JobServices } from './job-services.js';
import type { Job, JobOf } from './job-store.js';
import type { JobResult, ProgressOf, ResultOf, TypedJobKind } from './job-types.js';

/**
 * The main-thread side of a job kind: what the runner needs to run its jobs. Everything else —
 * claiming in order, pinning `now`, the worker lane, progress ticks, cancel, the no-progress
 * timeout, finishing, recovery after a crash — the runner does the same way for every kind.
 */
interface JobKindDefinition<K extends TypedJobKind, Plan> {
  kind: K;
  /**
   * The module run on the kind's worker lane; its default export is a `JobTask<K, Plan>`
   * (src/domain/jobs/task.ts). Give it as `new URL('./my-task.ts', import.meta.url)`.
   */
  task: URL;
  /** Fail the job when it reports no progress for this long. */
  timeoutMs: number;
  /** Jobs of this kind running at once (default 1). */
  concurrency?: number;
  /**
   * Fixes what the task will do, on the main thread, when the job starts: `now` is the job's
   * evaluation instant, pinned in its input at first start and the same in a re-run after a
   * crash. The plan crosses to the worker thread, so it is plain data. A plan that reads the
   * store is asynchronous (docs/scale-out.md, "The storage boundary").
   */
  plan(job: JobOf<K>, now: number, services: JobServices): Plan | Promise<Plan>;
  /** The result to keep while the job runs, from a progress report (e.g. a running estimate). */
  runningResult?(progress: ProgressOf<K>): ResultOf<K>;
  /**
   * Housekeeping the runner calls at start and every minute (e.g. purging expired previews);
   * the runner waits for a promise it returns.
   */
  sweep?(services: JobServices, now: number): unknown;
}

/** A kind as the runner holds it: the same definition, over any job. */
export interface RegisteredJobKind {
  kind: TypedJobKind;
  task: URL;
  timeoutMs: number;
  concurrency: number;
  plan(job: Job, now: number, services: JobServices): unknown;
  /** A progress report from the kind's task: how far, and the result to keep meanwhile, if any. */
  readProgress(payload: unknown): { done: number; total: number | null; result: JobResult | undefined };
  sweep(services: JobServices, now: number): unknown;
}

const registry = new Map<TypedJobKind, RegisteredJobKind>();

/**
 * Declares a job kind; the kind's module calls it when it is loaded, and the runner runs the
 * kinds declared so far. A kind's module is also where its jobs are created, so a kind is
 * always known before any job of it exists.
 */
export function defineJobKind<K extends TypedJobKind, Plan>(
  definition: JobKindDefinition<K, Plan>,
): JobKindDefinition<K, Plan> {
  if (registry.has(definition.kind)) throw new Error(`job kind ${definition.kind} is defined twice`);
  registry.set(definition.kind, {
    kind: definition.kind,
    task: definition.task,
    timeoutMs: definition.timeoutMs,
    concurrency: definition.concurrency ?? 1,
    // The runner claims jobs by kind, so the job is of this kind; progress arrives from the kind's own task.
    plan: (job, now, services) => definition.plan(job as JobOf<K>, now, services),
    readProgress: (payload) => {
      const progress = payload as ProgressOf<K>;
      return { done: progress.done, total: progress.total, result: definition.runningResult?.(progress) };
    },
    sweep: (services, now) => definition.sweep?.(services, now),
  });
  return definition;
}

/** The kinds declared so far, in the order they were declared. */
export function registeredJobKinds(): readonly RegisteredJobKind[] {
  return [...registry.values()];
}
