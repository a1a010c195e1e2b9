/** What a task running in a job worker can do: report progress and notice a cancel. */
export interface TaskHooks {
  progress(payload: unknown): void;
  cancelled(): boolean;
}

/** Thrown by a task that noticed its cancel flag; the runner then marks the job CANCELLED. */
export class TaskCancelled extends Error {}
