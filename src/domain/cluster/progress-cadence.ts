/**
 * How often a node writes a job's progress while it changes: subscribers then see it at least
 * this often, as the single-process runner publishes it. The lease beat alone (every third of
 * the lease) left a short job with no progress at all between QUEUED and its end.
 */
export const PROGRESS_MS = 250;
