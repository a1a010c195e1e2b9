import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import type { Connection } from '../db/index.js';
import type { EventBus } from './events.js';
import type { JobRunner } from './jobs/job-runner.js';
import type { WorkerLanes } from './jobs/worker-thread.js';
import type { ProfilesChangedHook } from './profile-ingest.js';
import type { QueryPool } from './queries/query-pool.js';

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
  /** Worker threads for ad-hoc evaluation (profilesMatching, evaluateProfile), within a time budget. */
  queries: QueryPool;
  /** Run inside every ingest transaction (streaming segmentation plugs in here). */
  ingestHooks: { onProfilesChanged?: ProfilesChangedHook };
}
