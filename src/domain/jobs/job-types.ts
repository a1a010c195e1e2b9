/**
 * The vocabulary of jobs (stored as src/db/vocabulary.ts has it) and the types of each kind.
 */
import type { JobKind, JobStatus } from '../../db/vocabulary.js';

export {
  JOB_KINDS,
  JOB_STATUSES,
  JOB_TRIGGERS,
  type JobKind,
  type JobStatus,
  type JobTrigger,
  RANGE_STATUSES,
  type RangeStatus,
} from '../../db/vocabulary.js';

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

/** Any kind's input or result, as the `jobs` table stores it (as JSON: the table types it `object`). */
export type JobInput = InputOf<TypedJobKind>;
export type JobResult = ResultOf<TypedJobKind>;
