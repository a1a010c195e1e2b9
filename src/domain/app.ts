/**
 * The composition root of the domain: every process-wide service, built once, in dependency
 * order, with what each needs handed in (no slot filled in later). The server adds HTTP around
 * it; the CLI and benchmarks can build one without a server.
 */
import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import { type Checkpointer, startCheckpointer } from '../db/checkpointer.js';
import type { Connection } from '../db/index.js';
import { EventBus, type EventTransport } from './events.js';
import { type IngestCounter, IngestService } from './ingest.js';
import { ThreadIngestWriter } from './ingest-thread.js';
import { type IngestWriter, LocalIngestWriter } from './ingest-writer.js';
import { JobRunner } from './jobs/job-runner.js';
import { WorkerLanes } from './jobs/worker-thread.js';
import { QueryPool } from './queries/query-pool.js';
import type { Clock } from './schedules/clock.js';
import { Scheduler } from './schedules/scheduler.js';
import { SearchWatcher } from './search/live-search.js';
import { StreamingSegmentation } from './streaming.js';
// The job kinds register themselves when loaded; the app loads every kind it runs.
import './exports/export-job.js';
import './external-audiences/ingestion-run.js';
import './definition-changes/definition-change-preview.js';
import './previews/previews.js';
import './segment-jobs/segment-job.js';
// Schedule types register themselves the same way.
import './schedules/batch-segmentation.js';
import './exports/export-schedule.js';

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
  /**
   * Profile and event ingestion with its streaming step (evaluation inside ingests, the sweep of
   * expired members) and counters: on a thread of its own for a database file.
   */
  ingest: IngestService;
  /** Cron-driven runs: the schedules' timers and their mutations. */
  schedules: Scheduler;
  /** Notices search index commits while live searches are open (searchResults). */
  search: SearchWatcher;
  /** WAL checkpoints off the request path (absent for an in-memory database). */
  checkpointer: Checkpointer | undefined;
}

/** How often the checkpoint thread copies the log into the database file. */
const CHECKPOINT_INTERVAL_MS = 100;

interface AppOptions {
  conn: Connection;
  limits: Limits;
  log: Logger;
  dataDir: string;
  ingestCounter?: IngestCounter;
  /** The scheduler's clock (default: the system clock); tests move one by hand. */
  clock?: Clock;
  /** Told how many subscription events were dropped for subscribers that fell behind. */
  droppedEvents?: (count: number) => void;
  /** How events reach the other nodes (closed with the app); absent: this process only. */
  transport?: EventTransport;
}

/** Builds the services and starts the background ones (job runner, streaming sweep, scheduler). */
export async function createApp(options: AppOptions): Promise<App> {
  const { conn, limits, log, dataDir } = options;
  const bus = new EventBus({
    queueSize: limits.subscriptionQueueSize,
    onDropped: options.droppedEvents,
    transport: options.transport,
  });
  const workers = new WorkerLanes();
  // Two threads: one heavy query leaves another lane free, and this box has two cores.
  const queries = new QueryPool(conn.sqlite.name, 2, limits.queryTimeoutMs, log.child({ component: 'queries' }));
  const ingest = new IngestService({ writer: ingestWriter(options, bus), counter: options.ingestCounter });
  const search = new SearchWatcher(conn, bus);
  const services = { conn, limits, bus, log, dataDir, workers, queries, ingest, search };
  const jobs = new JobRunner({ conn, bus, log, limits, lanes: workers, dataDir });
  const schedules = new Scheduler({
    conn,
    bus,
    log: log.child({ component: 'scheduler' }),
    jobs,
    clock: options.clock,
  });
  const checkpointer = startCheckpointer(conn, CHECKPOINT_INTERVAL_MS, (message) =>
    log.warn({ message }, 'WAL checkpoint failed'),
  );
  const app: App = { ...services, jobs, schedules, checkpointer };
  await jobs.start();
  ingest.start();
  // After the runner has re-queued what a crash left running, so those count as active runs.
  await schedules.start();
  return app;
}

/**
 * Where ingests are written: on the ingest thread for a database file (ingest-thread.ts), on
 * this thread for an in-memory one, which no other thread can open.
 */
function ingestWriter(options: AppOptions, bus: EventBus): IngestWriter {
  const { conn, limits, log } = options;
  const streaming = { sweepMs: limits.streamingSweepMs, windowProfiles: limits.streamingWindowProfiles };
  const file = conn.sqlite.name;
  if (file === ':memory:' || file === '' || conn.sqlite.readonly) {
    return new LocalIngestWriter({
      conn,
      limits,
      streaming: new StreamingSegmentation({ conn, bus, log, ...streaming }),
    });
  }
  return new ThreadIngestWriter({ conn, bus, limits, log: log.child({ component: 'ingest' }), ...streaming });
}

/** Stops the background services and the worker threads (the connection is the caller's). */
export async function closeApp(app: App): Promise<void> {
  app.schedules.stop();
  await app.ingest.close();
  app.search.stop();
  await app.jobs.stop();
  await app.workers.close();
  await app.queries.close();
  await app.bus.close();
  await app.checkpointer?.stop();
}
