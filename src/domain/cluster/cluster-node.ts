/**
 * One node's share of the cluster's job work: start queued segment jobs, evaluate ranges, end
 * jobs whose ranges are done, run queued exports whole (cluster-export-job.ts), take back ranges
 * and exports whose nodes stopped renewing their leases, and account for schedules' due times
 * (cluster-schedules.ts) — the last on a loop of its own, so a node busy with a long range or
 * export still ticks schedules on time.
 * A node has slots of its own for each kind of work: `rangeSlots` ranges at once (two by
 * default), one export beside them, one preview, one dry run or ingestion run. An export is long
 * and a range is short, so with one slot for both a node holding an export took no range until
 * it ended, and one that always found a range never took an export; with a slot each, each kind
 * of work goes on whatever the other does. A range's statements run one after another on one
 * PostgreSQL backend, which is one core of the database (the planner seldom gives a range's
 * statements parallel workers): with one range at a time, a job on one node left the rest of the
 * database idle, where one statement over all profiles gets parallel workers.
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

/** A node's settings: the cluster's, and how many ranges it evaluates at once, each on its own connection. */
export interface NodeSettings extends ClusterSettings {
  rangeSlots: number;
}

export interface ClusterNodeOptions extends Partial<NodeSettings> {
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
  readonly settings: NodeSettings;
  /** Stops taking work, lets the ranges and the export in hand finish, and closes the LISTEN connection. */
  stop(): Promise<void>;
}

export const DEFAULT_CLUSTER_SETTINGS = {
  leaseMs: 15_000,
  rangeProfiles: 100_000,
  rangeSlots: 2,
  chunkSize: 10_000,
} as const;

/** Starts the node's loop; it runs until `stop()`. */
export async function startClusterNode(options: ClusterNodeOptions): Promise<ClusterNode> {
  const settings: NodeSettings = {
    node: options.node ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
    leaseMs: options.leaseMs ?? DEFAULT_CLUSTER_SETTINGS.leaseMs,
    rangeProfiles: options.rangeProfiles ?? DEFAULT_CLUSTER_SETTINGS.rangeProfiles,
    rangeSlots: Math.max(1, options.rangeSlots ?? DEFAULT_CLUSTER_SETTINGS.rangeSlots),
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
  /** The range slots: the ranges this node is evaluating. */
  const evaluating = new Set<Promise<void>>();
  // A node's ends of jobs one after another: two of its ranges finishing together would otherwise
  // each find the other's job row locked or its range not yet done, and leave the job to the sweep.
  let ending: Promise<unknown> = Promise.resolve();

  const runHeldRange = async (range: HeldRange) => {
    try {
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
        const ended = ending.then(() => endJob(pool, range.jobId));
        ending = ended.catch(() => {});
        const jobEnd = await ended;
        if (jobEnd !== 'not yet') {
          plans.delete(range.jobId);
          emit({ type: 'job-ended', jobId: range.jobId, end: jobEnd });
        }
      }
    } catch (err) {
      emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    } finally {
      // The slot is free: look for the next range now, not at the next poll.
      woken();
    }
  };

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
    while (running && evaluating.size < settings.rangeSlots) {
      const range = await claimRange(pool, settings.node, settings.leaseMs);
      if (!range) break;
      emit({ type: 'range-claimed', range });
      // Not awaited: the range runs in its slot while this loop goes on taking work.
      const slot: Promise<void> = runHeldRange(range).finally(() => evaluating.delete(slot));
      evaluating.add(slot);
      found = true;
    }
    return found;
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
      await Promise.all([exporting, ...evaluating, previews.settled(), wholeJobs.settled()]);
      await listener.end().catch(() => {});
    },
  };
}
