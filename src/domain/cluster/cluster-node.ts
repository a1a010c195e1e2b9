/**
 * One node's share of the cluster's job work: start queued segment jobs, evaluate ranges, end
 * jobs whose ranges are done, run queued exports whole (cluster-export-job.ts), take back ranges
 * and exports whose nodes stopped renewing their leases, and account for schedules' due times
 * (cluster-schedules.ts) — the last on a loop of its own, so a node busy with a long range or
 * export still ticks schedules on time.
 * A node has two slots: one range at a time on the main loop, and one export at a time beside
 * it. An export is long and a range is short, so with one slot a node holding an export took no
 * range until it ended, and one that always found a range never took an export; with two, each
 * kind of work goes on whatever the other does.
 * Every node runs the same loop against the same PostgreSQL; they coordinate only through rows
 * (SKIP LOCKED claims, leases) and wake each other with NOTIFY, polling as a fallback.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import type { JobKind } from '../jobs/job-types.js';
import type { NewTick } from '../schedules/schedule-ticks.js';
import {
  claimExportJob,
  type ExportEnd,
  type ExportSettings,
  type HeldExport,
  removeAbandonedExportFiles,
  requeueExpiredExports,
  runClusterExport,
} from './cluster-export-job.js';
import { wholeJobRunners } from './cluster-job-kinds.js';
import { type PreviewEvent, previewJobKinds } from './cluster-preview-job.js';
import { runDueSchedules } from './cluster-schedules.js';
import {
  type ClusterSettings,
  endJob,
  planOf,
  type RangeEnd,
  runRange,
  startQueuedSegmentJob,
  WORK_CHANNEL,
} from './cluster-segment-job.js';
import { wholeJobSlot } from './cluster-whole-jobs.js';
import { claimRange, type HeldRange, jobsToEnd, requeueExpiredRanges } from './range-queue.js';

/** What a node reports as it works (tests and the benchmark watch it). */
export type NodeEvent =
  | { type: 'job-started'; jobId: number }
  | { type: 'range-claimed'; range: HeldRange }
  | { type: 'range-ended'; range: HeldRange; end: RangeEnd }
  | { type: 'job-ended'; jobId: number; end: string }
  | { type: 'ranges-requeued'; count: number }
  | { type: 'export-claimed'; jobId: number; attempts: number }
  | { type: 'export-ended'; jobId: number; attempts: number; end: ExportEnd }
  | { type: 'exports-requeued'; jobs: { jobId: number; status: string }[] }
  | { type: 'schedule-tick'; tick: NewTick }
  | PreviewEvent
  | { type: 'jobs-requeued'; jobs: { jobId: number; kind: JobKind; status: string }[] }
  | { type: 'error'; error: Error };

export interface ClusterNodeOptions extends Partial<ClusterSettings> {
  pool: pg.Pool;
  /** The database URL, for the LISTEN connection (a pooled client cannot hold a LISTEN). */
  url: string;
  /** How often an idle node looks for work without being woken (and sweeps expired leases). */
  pollMs?: number;
  /**
   * The data directory dataset folders live under, shared by every node (one machine, or a
   * shared mount). A node without one runs no exports.
   */
  dataDir?: string;
  /** Rows an export reads per statement. */
  exportPageRows?: number;
  /** Test-only: a pause after each page an export reads, so a test can kill a node mid-export. */
  testOnlyExportPageDelayMs?: number;
  /** Test-only: a pause before each random chunk a preview reads. */
  testOnlyPreviewChunkDelayMs?: number;
  onEvent?: (event: NodeEvent) => void;
}

export interface ClusterNode {
  readonly settings: ClusterSettings;
  /** Stops taking work, lets the range and the export in hand finish, and closes the LISTEN connection. */
  stop(): Promise<void>;
}

export const DEFAULT_CLUSTER_SETTINGS = { leaseMs: 15_000, rangeProfiles: 100_000, chunkSize: 10_000 } as const;

/** Starts the node's loop; it runs until `stop()`. */
export async function startClusterNode(options: ClusterNodeOptions): Promise<ClusterNode> {
  const settings: ClusterSettings = {
    node: options.node ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
    leaseMs: options.leaseMs ?? DEFAULT_CLUSTER_SETTINGS.leaseMs,
    rangeProfiles: options.rangeProfiles ?? DEFAULT_CLUSTER_SETTINGS.rangeProfiles,
    chunkSize: options.chunkSize ?? DEFAULT_CLUSTER_SETTINGS.chunkSize,
  };
  const pollMs = options.pollMs ?? 1_000;
  const emit = options.onEvent ?? (() => {});
  const { pool } = options;
  let running = true;
  let wake: (() => void) | undefined;
  // A wake-up that came while the loop was working rather than waiting: the loop goes round
  // again at once instead of sleeping through it.
  let nudged = false;
  const woken = () => {
    const w = wake;
    wake = undefined;
    if (w) w();
    else nudged = true;
  };

  const listener = new pg.Client({ connectionString: options.url });
  listener.on('notification', woken);
  // A lost LISTEN connection only costs promptness: the poll still finds the work.
  listener.on('error', () => {});
  await listener.connect();
  await listener.query(`LISTEN ${WORK_CHANNEL}`);

  const { dataDir } = options;
  const exportSettings: ExportSettings | undefined = dataDir
    ? {
        node: settings.node,
        leaseMs: settings.leaseMs,
        dataDir,
        pageRows: options.exportPageRows ?? 2_000,
        testOnlyPageDelayMs: options.testOnlyExportPageDelayMs ?? 0,
      }
    : undefined;
  const plans = new Map<number, Awaited<ReturnType<typeof planOf>>>();
  let lastSweep = 0;
  // A third slot, beside the range loop and the export slot: one preview at a time (cluster-preview-job.ts).
  const previews = wholeJobSlot(
    pool,
    settings,
    previewJobKinds(pool, { testOnlyChunkDelayMs: options.testOnlyPreviewChunkDelayMs }, emit),
    emit,
    woken,
  );
  /** The export slot: the export this node is running, if any. */
  let exporting: Promise<void> | undefined;

  const runExport = async (held: HeldExport, settings: ExportSettings) => {
    try {
      emit({ type: 'export-claimed', jobId: held.jobId, attempts: held.attempts });
      const end = await runClusterExport(pool, held, settings);
      emit({ type: 'export-ended', jobId: held.jobId, attempts: held.attempts, end });
      if (end !== 'lost') emit({ type: 'job-ended', jobId: held.jobId, end });
    } catch (err) {
      emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    } finally {
      exporting = undefined;
      // The slot is free: look for the next export now, not at the next poll.
      woken();
    }
  };

  // A fourth slot: dry runs and ingestion runs, one at a time (cluster-whole-jobs.ts).
  const wholeJobs = wholeJobSlot(pool, settings, wholeJobRunners(dataDir), emit, woken);

  /** One pass: true when it found work (so the loop goes again at once). */
  const step = async (): Promise<boolean> => {
    const now = Date.now();
    if (now - lastSweep >= Math.min(pollMs, settings.leaseMs / 2)) {
      lastSweep = now;
      const count = await requeueExpiredRanges(pool, now);
      if (count > 0) emit({ type: 'ranges-requeued', count });
      for (const jobId of await jobsToEnd(pool)) {
        const end = await endJob(pool, jobId);
        if (end !== 'not yet') emit({ type: 'job-ended', jobId, end });
      }
      const exports = await requeueExpiredExports(pool, now);
      if (exports.length > 0) {
        emit({ type: 'exports-requeued', jobs: exports.map((e) => ({ jobId: e.jobId, status: e.status })) });
        for (const e of exports) {
          if (e.status !== 'QUEUED' && dataDir) removeAbandonedExportFiles(dataDir, e.sandboxId, e.datasetId, e.jobId);
          if (e.status !== 'QUEUED') emit({ type: 'job-ended', jobId: e.jobId, end: e.status.toLowerCase() });
        }
      }
    }
    if (now === lastSweep) {
      await previews.sweep(now);
      await wholeJobs.sweep(now);
    }
    const started = await startQueuedSegmentJob(pool, settings);
    if (started !== undefined) emit({ type: 'job-started', jobId: started });
    let found = started !== undefined;
    if (exportSettings && !exporting && running) {
      const held = await claimExportJob(pool, settings.node, settings.leaseMs);
      if (held) {
        // Not awaited: the export runs in its slot while this loop goes on taking ranges.
        exporting = runExport(held, exportSettings);
        found = true;
      }
    }
    if (running && (await previews.take())) found = true;
    if (running && (await wholeJobs.take())) found = true;
    const range = await claimRange(pool, settings.node, settings.leaseMs);
    if (!range) return found;
    emit({ type: 'range-claimed', range });
    let plan = plans.get(range.jobId);
    if (!plan) {
      plan = await planOf(pool, range.jobId);
      // Jobs other nodes end never leave this cache by themselves; a few live jobs is all it needs.
      if (plans.size >= 64) plans.clear();
      plans.set(range.jobId, plan);
    }
    if (!plan) throw new Error(`job ${range.jobId} has ranges but no plan`);
    const end = await runRange(pool, range, plan, settings);
    emit({ type: 'range-ended', range, end });
    if (end === 'done') {
      const jobEnd = await endJob(pool, range.jobId);
      if (jobEnd !== 'not yet') {
        plans.delete(range.jobId);
        emit({ type: 'job-ended', jobId: range.jobId, end: jobEnd });
      }
    }
    return true;
  };

  /** Sleeps until `ms` have passed or a NOTIFY wakes the node. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = (async () => {
    while (running) {
      let busy = false;
      try {
        busy = await step();
      } catch (err) {
        emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
      }
      if (busy || !running) continue;
      if (nudged) {
        nudged = false;
        continue;
      }
      await pause(pollMs);
    }
  })();

  let stopSchedules: (() => void) | undefined;
  const schedules = (async () => {
    while (running) {
      let wait = pollMs;
      try {
        const sweep = await runDueSchedules(pool);
        for (const tick of sweep.ticks) emit({ type: 'schedule-tick', tick });
        // Wake at the next due time (a NOTIFY-free wait: schedules change rarely, and the poll catches edits).
        if (sweep.nextDueAt !== null) wait = Math.max(0, Math.min(pollMs, sweep.nextDueAt - Date.now()));
      } catch (err) {
        emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
      }
      if (!running) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        stopSchedules = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();

  return {
    settings,
    async stop() {
      running = false;
      woken();
      stopSchedules?.();
      await Promise.all([loop, schedules]);
      await Promise.all([exporting, previews.settled(), wholeJobs.settled()]);
      await listener.end().catch(() => {});
    },
  };
}
