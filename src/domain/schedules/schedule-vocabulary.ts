/**
 * The vocabulary of schedules. This file imports nothing, because the table definitions
 * (src/db/schema.ts, which drizzle-kit loads on its own) type the schedule columns with it.
 */

export const SCHEDULE_TYPES = ['BATCH_SEGMENTATION', 'EXPORT'] as const;
export type ScheduleType = (typeof SCHEDULE_TYPES)[number];

export const SCHEDULE_STATES = ['ACTIVE', 'INACTIVE'] as const;
export type ScheduleState = (typeof SCHEDULE_STATES)[number];

/** What became of one due time of a schedule. */
export const TICK_OUTCOMES = ['STARTED', 'SKIPPED_OVERLAP', 'MISSED', 'FAILED_TO_START'] as const;
export type TickOutcome = (typeof TICK_OUTCOMES)[number];
