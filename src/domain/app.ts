import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import type { Connection } from '../db/index.js';
import type { EventBus } from './events.js';
import type { JobRunner } from './jobs/job-runner.js';
import type { WorkerLanes } from './jobs/worker-thread.js';
import type { ProfilesChangedHook } from './profile-ingest.js';

/** The process-wide services every domain operation may need. */
export interface App {
  conn: Connection;
  limits: Limits;
  bus: EventBus;
  log: Logger;
  dataDir: string;
  jobs: JobRunner;
  /** Worker threads for heavy job work, one per job kind. */
  workers: WorkerLanes;
  /** Run inside every ingest transaction (streaming segmentation plugs in here). */
  ingestHooks: { onProfilesChanged?: ProfilesChangedHook };
}
