import type { Store } from '../../db/store.js';
import { badInput } from '../errors.js';
import type { JobQueue } from '../jobs/job-queue.js';
import type { Job } from '../jobs/job-store.js';
import type { ScheduleType } from './schedule-vocabulary.js';

/** What a schedule type may use to start a run. */
export interface ScheduleTypeServices {
  conn: Store;
  jobs: JobQueue;
}

/** What a schedule type's properties name, so that deleting one of them is refused while the schedule exists. */
export interface ScheduleTargets {
  audienceIds: number[];
}

/** How a schedule runs: the job type behind a `ScheduleType`, registered by the module that owns that job. */
export interface ScheduleTypeDefinition {
  /**
   * Checks the properties as the job's own create call would (throwing a `DomainError`, with
   * `field` paths under `input.properties`) and returns what they name.
   */
  validate(conn: Store, sandboxId: number, properties: unknown): Promise<ScheduleTargets>;
  /**
   * Queues one run: a job with `trigger: 'SCHEDULE'` and the schedule's id. `app.conn` is the
   * handle of the scheduler's unit, which the run is queued in.
   */
  start(
    app: ScheduleTypeServices,
    sandboxId: number,
    properties: unknown,
    options: { trigger: 'SCHEDULE'; scheduleId: number },
  ): Promise<Job>;
}

const registry = new Map<ScheduleType, ScheduleTypeDefinition>();

/** Makes a schedule type available; the module that owns the type's job calls it when it is loaded. */
export function registerScheduleType(type: ScheduleType, definition: ScheduleTypeDefinition): void {
  if (registry.has(type)) throw new Error(`schedule type ${type} is registered twice`);
  registry.set(type, definition);
}

/** Why a type cannot be scheduled in this build, by type. */
const UNAVAILABLE: Record<ScheduleType, string> = {
  BATCH_SEGMENTATION: 'no BATCH_SEGMENTATION schedules: segment jobs are not available',
  EXPORT: 'no EXPORT schedules: export jobs are not available',
};

/** The type's definition; BAD_USER_INPUT when no module registered it. */
export function scheduleType(type: ScheduleType, field = 'input.type'): ScheduleTypeDefinition {
  const found = registry.get(type);
  if (!found) throw badInput(UNAVAILABLE[type], field);
  return found;
}
