/** The vocabulary of schedules, as the tables store it (src/db/vocabulary.ts). */
export {
  SCHEDULE_STATES,
  SCHEDULE_TYPES,
  type ScheduleState,
  type ScheduleType,
  TICK_OUTCOMES,
  type TickOutcome,
} from '../../db/vocabulary.js';
