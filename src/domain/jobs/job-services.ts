import type { Logger } from 'pino';
import type { Limits } from '../../config.js';
import type { Connection } from '../../db/index.js';
import type { EventBus } from '../events.js';
import type { WorkerLanes } from './worker-thread.js';

/**
 * What the job runner, and the kinds it runs, may use: given to the runner where the app is
 * built, so its dependencies are in its constructor and not in an app object it reaches into.
 */
export interface JobServices {
  conn: Connection;
  /** Job state and progress are published here (topics.job, topics.sandboxJobs). */
  bus: EventBus;
  log: Logger;
  limits: Limits;
  /** Worker threads for the kinds' tasks, one lane per kind. */
  lanes: WorkerLanes;
  /** The data directory (files a kind writes, such as exports, go under it). */
  dataDir: string;
}
