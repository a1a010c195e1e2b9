/**
 * The composition root of the domain: every process-wide service, built once, in dependency
 * order, with what each needs handed in (no slot filled in later). The server adds HTTP around
 * it; the CLI and benchmarks can build one without a server. This file builds the app on a
 * SQLite file; pg-app.ts builds the same `App` on PostgreSQL, from the cluster's parts.
 */
import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import { startCheckpointer } from '../db/checkpointer.js';
import type { Connection } from '../db/index.js';
import type { Store } from '../db/store.js';
import { writeStamp } from '../db/write-stamp.js';
import { EventBus, type EventTransport } from './events.js';
import { type IngestCounter, IngestService } from './ingest.js';
import { ThreadIngestWriter } from './ingest-thread.js';
import { type IngestWriter, LocalIngestWriter } from './ingest-writer.js';
import type { JobQueue } from './jobs/job-queue.js';
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
  /** The database every request reads and writes through (either kind: db/store.ts). */
  conn: Store;
  limits: Limits;
  bus: EventBus;
  log: Logger;
  dataDir: string;
  /** Where jobs are queued and cancelled: this process's runner, or the cluster's queue. */
  jobs: JobQueue;
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
  /**
   * The write stamp answers kept between requests are checked against (the response cache):
   * SQLite's, which sees every commit to the file. Absent on PostgreSQL, where writers on other
   * nodes move no stamp this process could read cheaply: there nothing is kept.
   */
  responseStamp?: () => string;
  /**
   * Stops the work that writes (ingestion, jobs) and leaves reads serving: what damage to the
   * database calls for (server/health.ts).
   */
  halt(): Promise<void>;
  /**
   * Stops taking work (job runner or cluster node, timers, sweeps), stops the background
   * services and the threads; the database is the caller's.
   */
  close(): Promise<void>;
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
  const services = { conn, limits, bus, log, dataDir, queries, ingest, search };
  const jobs = new JobRunner({ conn, bus, log, limits, lanes: workers, dataDir });
  const schedules = new Scheduler({
    conn,
    bus,
    log: log.child({ component: 'scheduler' }),
    jobs,
    clock: options.clock,
    timers: conn,
  });
  const checkpointer = startCheckpointer(conn, CHECKPOINT_INTERVAL_MS, (message) =>
    log.warn({ message }, 'WAL checkpoint failed'),
  );
  const close = async () => {
    schedules.stop();
    await ingest.close();
    search.stop();
    await jobs.stop();
    await workers.close();
    await queries.close();
    await bus.close();
    await checkpointer?.stop();
  };
  const halt = async () => {
    await ingest.close();
    await jobs.stop();
  };
  const app: App = { ...services, jobs, schedules, responseStamp: () => writeStamp(conn), halt, close };
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

/** Stops the background services and the worker threads (the database is the caller's). */
export function closeApp(app: App): Promise<void> {
  return app.close();
}
