/**
 * The vocabulary of jobs and the types of each kind. This file imports nothing, because the
 * table definitions (src/db/schema.ts, which drizzle-kit loads on its own) type the `jobs`
 * columns with it.
 */

export const JOB_KINDS = ['SEGMENT', 'EXPORT', 'PREVIEW', 'INGESTION', 'DEFINITION_CHANGE_PREVIEW'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export const JOB_STATUSES = ['QUEUED', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** A part of a job split by profile id (job_ranges): waiting, held by a node under a lease, or evaluated. */
export const RANGE_STATUSES = ['QUEUED', 'PROCESSING', 'DONE'] as const;
export type RangeStatus = (typeof RANGE_STATUSES)[number];
export const JOB_TRIGGERS = ['MANUAL', 'SCHEDULE'] as const;
export type JobTrigger = (typeof JOB_TRIGGERS)[number];
const TERMINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
export const isTerminal = (status: JobStatus) => TERMINAL_STATUSES.includes(status);

/** What every kind's input carries: the instant asked for, and the one the runner pinned at first start. */
export interface JobInputBase {
  /** The evaluation instant asked for; null or absent: when the job first starts. */
  at?: number | null;
  /** Set by the runner at first start and reused by a re-run after a crash, so the re-run does the same work. */
  now?: number;
}

/** What every kind's task reports as progress (in the kind's own units: profiles, rows). */
interface JobProgressBase {
  done: number;
  total: number | null;
}

/** The three types a job kind declares. */
interface JobKindShape {
  /** What the job was asked to do (stored as JSON in `jobs.input`). */
  input: JobInputBase;
  /** What its task reports while it runs (crosses the thread boundary, never stored whole). */
  progress: JobProgressBase;
  /** What it leaves behind (stored as JSON in `jobs.result`). */
  result: object;
}

/**
 * The types of each job kind, keyed by kind. Empty here: each kind's module adds its entry by
 * declaration merging, next to its code, so adding a kind needs no change to this folder:
 *
 * ```ts
 * declare module '../jobs/job-types.js' {
 *   interface JobKindTypes {
 *     SEGMENT: { input: SegmentJobInput; progress: SegmentProgress; result: SegmentJobResult };
 *   }
 * }
 * ```
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each kind's module
export interface JobKindTypes {}

/** The kinds whose module has declared its types (a kind listed in JOB_KINDS but not built yet has none). */
export type TypedJobKind = keyof JobKindTypes & JobKind;

type ShapeOf<K extends TypedJobKind> = JobKindTypes[K] extends JobKindShape ? JobKindTypes[K] : never;
export type InputOf<K extends TypedJobKind> = ShapeOf<K>['input'];
export type ProgressOf<K extends TypedJobKind> = ShapeOf<K>['progress'];
export type ResultOf<K extends TypedJobKind> = ShapeOf<K>['result'];

/** Any kind's input or result, as the `jobs` table stores it. */
export type JobInput = InputOf<TypedJobKind>;
export type JobResult = ResultOf<TypedJobKind>;
