import type { JobResult } from './job-types.js';

/**
 * A task's failure that still has a result to keep: how far it got when it found it could not go
 * on (an ingestion run with nothing usable says how many rows it read and rejected). Without it a
 * failed job would show whichever running result a progress report wrote last, which depends on
 * timing and differs between the two backends.
 */
export class JobFailure extends Error {
  constructor(
    message: string,
    /** Undefined: the job keeps the running result it had. */
    readonly result?: JobResult,
  ) {
    super(message);
    this.name = 'JobFailure';
  }
}

/** What a job that failed with `err` records beside its FAILED status. */
export function failureFields(err: unknown): { error: string; result?: JobResult } {
  const error = err instanceof Error ? err.message : String(err);
  return err instanceof JobFailure && err.result !== undefined ? { error, result: err.result } : { error };
}
