/**
 * The composition root on PostgreSQL: the same `App` as app.ts builds on a SQLite file, from the
 * parts a cluster of stateless nodes needs (docs/scale-out.md, "A serving node"). Every request
 * reads and writes the shared database through the pool; what a SQLite process does on its own
 * threads is done here by the cluster's parts:
 *
 * - jobs are queued in the database and woken with NOTIFY (ClusterJobQueue); this process is also
 *   one of the cluster's nodes (cluster-node.ts) and runs its share of them, and every job row
 *   change made by any node reaches this process's subscribers (ClusterJobWatcher);
 * - ingests run in units on the pool, streaming segmentation and an external audience's pending
 *   members inside them (PooledIngestWriter), serialised per sandbox by the ingest lock;
 * - schedules are ticked once across the cluster by the nodes' loops, so the Scheduler here only
 *   serves the schedule mutations (no timers);
 * - ad-hoc queries run on worker threads, each with a client of its own (QueryPool on the URL);
 * - no response cache: no stamp this process could read cheaply sees other nodes' commits.
 *
 * With `SEGQL_REDIS_URL` the event bus carries every topic to the other nodes.
 */
import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import type { PgConnection } from '../db/pg/index.js';
import type { App } from './app.js';
import { ClusterJobQueue } from './cluster/cluster-job-queue.js';
import { ClusterJobWatcher } from './cluster/cluster-job-watcher.js';
import { type ClusterNode, type NodeEvent, startClusterNode } from './cluster/cluster-node.js';
import { EventBus, type EventTransport, topics } from './events.js';
import { type IngestCounter, IngestService } from './ingest.js';
import { PooledIngestWriter } from './pooled-ingest-writer.js';
import { QueryPool } from './queries/query-pool.js';
import { Scheduler } from './schedules/scheduler.js';
import { SearchWatcher } from './search/live-search.js';
// The job kinds' API modules (their input types, checks and getters) and the schedule types, as
// app.ts loads them; on PostgreSQL the nodes run the jobs, not this process's runner.
import './exports/export-job.js';
import './external-audiences/ingestion-run.js';
import './definition-changes/definition-change-preview.js';
import './previews/previews.js';
import './segment-jobs/segment-job.js';
import './schedules/batch-segmentation.js';
import './exports/export-schedule.js';

/** The smallest segment-job chunk on PostgreSQL, in profiles. */
const MIN_PG_CHUNK = 500;

export interface PgAppOptions {
  store: PgConnection;
  /** The database URL: the nodes' and the job watcher's LISTEN connections, the query threads' clients. */
  url: string;
  limits: Limits;
  log: Logger;
  /** Where uploads are staged and datasets written: shared by every node (one machine, or a shared mount). */
  dataDir: string;
  ingestCounter?: IngestCounter;
  droppedEvents?: (count: number) => void;
  /** How events reach the other nodes (closed with the app); absent: this process only. */
  transport?: EventTransport;
  /** The cluster node's settings (tests shorten the lease); its loop runs unless `runJobs` is false. */
  node?: { leaseMs?: number; rangeProfiles?: number; rangeSlots?: number; pollMs?: number; name?: string };
  /** False: this process serves the API and queues jobs, and other nodes (`segql work`) run them. */
  runJobs?: boolean;
}

export async function createPgApp(options: PgAppOptions): Promise<App> {
  const { store, url, limits, log, dataDir } = options;
  const bus = new EventBus({
    queueSize: limits.subscriptionQueueSize,
    onDropped: options.droppedEvents,
    transport: options.transport,
  });
  const queries = new QueryPool(url, 2, limits.queryTimeoutMs, log.child({ component: 'queries' }));
  const writer = new PooledIngestWriter({
    store,
    limits,
    bus,
    log: log.child({ component: 'ingest' }),
    sweepMs: limits.streamingSweepMs,
  });
  const ingest = new IngestService({ writer, counter: options.ingestCounter });
  const search = new SearchWatcher(store, bus);
  const watcher = new ClusterJobWatcher({ url, store, bus, log: log.child({ component: 'job-updates' }) });
  const jobs = new ClusterJobQueue({ store, announce: (job) => watcher.announce(job) });
  const schedules = new Scheduler({ conn: store, bus, log: log.child({ component: 'scheduler' }), jobs });
  await watcher.start();
  let node: ClusterNode | undefined;
  if (options.runJobs !== false) {
    const nodeLog = log.child({ component: 'node' });
    node = await startClusterNode({
      pool: store.pool,
      url,
      dataDir,
      leaseMs: options.node?.leaseMs,
      rangeProfiles: options.node?.rangeProfiles,
      rangeSlots: options.node?.rangeSlots,
      // Profiles per chunk, the unit of progress and cancel checks, as on SQLite; but a chunk costs
      // a round trip per definition here, so a tiny chunk (tests use 10) is raised to MIN_PG_CHUNK.
      chunkSize: Math.max(limits.segmentChunkSize, MIN_PG_CHUNK),
      pollMs: options.node?.pollMs,
      ...(options.node?.name ? { node: options.node.name } : {}),
      onEvent: (event: NodeEvent) => {
        if (event.type === 'error') nodeLog.error({ err: event.error }, 'cluster node error');
        // The tick was recorded by this node, once across the cluster; the bus (and Redis) tells everyone.
        else if (event.type === 'schedule-tick') bus.publish(topics.scheduleTicks(event.tick.sandboxId), event.tick);
        else nodeLog.debug({ ...event }, event.type);
      },
    });
  }
  ingest.start();
  const halt = async () => {
    await ingest.close();
    await node?.stop();
    node = undefined;
  };
  const close = async () => {
    await halt();
    search.stop();
    await watcher.stop();
    await queries.close();
    await bus.close();
  };
  return { conn: store, limits, bus, log, dataDir, jobs, queries, ingest, schedules, search, halt, close };
}
