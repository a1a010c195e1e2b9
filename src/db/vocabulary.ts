/**
 * The words the tables store for jobs and schedules: their columns are typed with them here,
 * and the domain names them from here (src/domain/jobs/job-types.ts,
 * src/domain/schedules/schedule-vocabulary.ts). This file imports nothing, because drizzle-kit
 * loads the table definitions (schema.ts, pg/schema.ts) on their own.
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

export const SCHEDULE_TYPES = ['BATCH_SEGMENTATION', 'EXPORT'] as const;
export type ScheduleType = (typeof SCHEDULE_TYPES)[number];
export const SCHEDULE_STATES = ['ACTIVE', 'INACTIVE'] as const;
export type ScheduleState = (typeof SCHEDULE_STATES)[number];
/** What became of one due time of a schedule. */
export const TICK_OUTCOMES = ['STARTED', 'SKIPPED_OVERLAP', 'MISSED', 'FAILED_TO_START'] as const;
export type TickOutcome = (typeof TICK_OUTCOMES)[number];
