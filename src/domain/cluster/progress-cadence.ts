/**
 * How often, at most, a node writes a job's progress while it changes: as often as the
 * single-process runner persists and publishes it (job-runner.ts), so a subscriber sees a job on
 * a cluster rise in as many steps as in one process. The lease beat alone (every third of the
 * lease) left a short job with no progress at all between QUEUED and its end. Each write is one
 * small UPDATE of the range's (or job's) row, announced to the serving nodes.
 */
export const PROGRESS_MS = 50;
