/**
 * A preview on a cluster of nodes sharing one PostgreSQL (docs/scale-out.md "Previews on a
 * cluster"). Like an export it is not split: one node runs it whole, and the job row carries the
 * queue's guarantees (cluster-export-job.ts):
 *
 * 1. queued: a `jobs` row of kind PREVIEW, its input checked as createPreview checks it
 *    (`enqueueClusterPreviewJob`);
 * 2. claimed by one node with `FOR UPDATE SKIP LOCKED` under a lease (`lease_owner`,
 *    `lease_until`, `attempts` as the lease's number), renewed every third of the lease time with
 *    the progress and the running estimate (`claimPreviewJob`, `renewPreviewLease`);
 * 3. sampled and evaluated in one REPEATABLE READ snapshot by the same counting as the SQLite
 *    task, only the reads differing (previews/pg-preview-sampling.ts);
 * 4. finished in one transaction that names the lease: the job SUCCEEDED with its result and
 *    the qualifying profiles in `preview_results`, which the API's getters read (previews.ts).
 *
 * A node that stops renewing loses the preview once its lease has passed: any node's sweep
 * puts it back in the queue (`requeueExpiredPreviews`) and another re-runs it from the start, at
 * the instant and with the seed the first claim pinned, so with the same store it gives the same
 * answer; the old holder's final write finds its lease gone and records nothing.
 */
import type pg from 'pg';
import type { Store } from '../../db/store.js';
import { requireDefinition } from '../definitions.js';
import { Cancelled } from '../jobs/cancelled.js';
import { checkDefinitionPg, readCatalogPg } from '../pg-expressions.js';
import { samplePreviewPg } from '../previews/pg-preview-sampling.js';
import type { PreviewProgress } from '../previews/preview-run.js';
import type { PreviewPlan } from '../previews/preview-sampling.js';
import {
  checkPreviewInput,
  PREVIEW_TIMEOUT_MS,
  PREVIEW_TTL_MS,
  type PreviewInput,
  type PreviewJobInput,
  previewJobInput,
} from '../previews/previews.js';
import { WORK_CHANNEL } from './cluster-segment-job.js';
import {
  cancelHeldJob,
  claimLeasedJob,
  failHeldJob,
  type HeldJob,
  LeaseBeat,
  type LeaseProgress,
  renewJobLease,
  requeueExpiredJobs,
} from './leased-job.js';
import { LeaseLost, type LeaseState } from './range-queue.js';

/** A preview this node holds: attempt `attempts` is its lease's number. */
export type HeldPreview = HeldJob<PreviewJobInput & { now: number }>;

/** What became of a preview this node held. */
export type PreviewEnd = 'succeeded' | 'failed' | 'cancelled' | 'lost';

/** What the preview slot reports (cluster-node.ts' events). */
export type PreviewEvent =
  | { type: 'preview-claimed'; jobId: number; attempts: number }
  | { type: 'preview-ended'; jobId: number; attempts: number; end: PreviewEnd }
  | { type: 'previews-requeued'; jobs: { jobId: number; status: string }[] };

/**
 * Checks a preview as createPreview does and queues it for the cluster; returns its id. The
 * definition (when one is named) and the expression are read and checked on `store`; the job is
 * inserted, and the nodes woken, in one transaction.
 */
export async function enqueueClusterPreviewJob(
  store: Store & { pool: pg.Pool },
  sandboxId: number,
  input: PreviewInput,
  options: { now?: number } = {},
): Promise<number> {
  const confidenceLevel = checkPreviewInput(input);
  const definition =
    input.definitionId != null ? await requireDefinition(store, sandboxId, input.definitionId) : undefined;
  const expression = definition ? definition.expression : input.expression!;
  const client = await store.pool.connect();
  try {
    await client.query('BEGIN');
    const catalog = await readCatalogPg(client, sandboxId);
    // Checked as on SQLite. One the PostgreSQL compiler refuses is still previewed, by the JS engine
    // on loaded documents (pg-preview-sampling.ts).
    const { text } = await checkDefinitionPg(client, sandboxId, catalog, expression, true);
    const now = options.now ?? Date.now();
    const stored = previewJobInput(input, expression, text, definition?.id ?? null, confidenceLevel);
    const { rows } = await client.query<{ id: number }>(
      `INSERT INTO jobs (sandbox_id, kind, status, input, trigger, created_at, updated_at)
       VALUES ($1, 'PREVIEW', 'QUEUED', $2, 'MANUAL', $3, $3) RETURNING id`,
      [sandboxId, JSON.stringify(stored), now],
    );
    await client.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, String(rows[0]!.id)]);
    await client.query('COMMIT');
    return rows[0]!.id;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Takes the oldest queued preview for `node` (leased-job.ts); the evaluation instant is pinned at the first claim. */
export function claimPreviewJob(
  db: Queryable,
  node: string,
  leaseMs: number,
  now = Date.now(),
): Promise<HeldPreview | undefined> {
  return claimLeasedJob(db, 'PREVIEW', node, leaseMs, now);
}

/**
 * Extends the lease of a preview `node` holds and records its progress and running estimate
 * (the result the single-process runner keeps while a preview runs): leased-job.ts.
 */
export function renewPreviewLease(
  db: Queryable,
  held: HeldPreview,
  node: string,
  leaseMs: number,
  progress: PreviewProgress | undefined,
  now = Date.now(),
): Promise<LeaseState> {
  return renewJobLease(db, held, node, leaseMs, previewLeaseProgress(progress), now);
}

function previewLeaseProgress(progress: PreviewProgress | undefined): LeaseProgress {
  if (!progress) return { done: null, total: null };
  return {
    done: progress.done,
    total: progress.total,
    result: { estimate: progress.estimate, sampleSize: progress.done },
  };
}

/** Puts every preview whose lease has passed back in the queue (leased-job.ts). */
export async function requeueExpiredPreviews(
  db: Queryable,
  now = Date.now(),
): Promise<{ jobId: number; status: 'QUEUED' | 'FAILED' | 'CANCELLED' }[]> {
  return (await requeueExpiredJobs(db, 'PREVIEW', 'preview', now)).map(({ jobId, status }) => ({ jobId, status }));
}

/**
 * Deletes finished previews older than a day with their results, as the single-process runner's
 * sweep does (previews.ts `purgeExpiredPreviews`), in one statement; returns how many.
 */
export async function purgeExpiredPreviewsPg(db: Queryable, now = Date.now()): Promise<number> {
  const { rowCount } = await db.query(
    `WITH expired AS (
       SELECT id FROM jobs WHERE kind = 'PREVIEW' AND created_at < $1 AND status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')),
     results AS (DELETE FROM preview_results WHERE job_id IN (SELECT id FROM expired))
     DELETE FROM jobs WHERE id IN (SELECT id FROM expired)`,
    [now - PREVIEW_TTL_MS],
  );
  return rowCount ?? 0;
}

/** How often a node purges expired previews (every node does; a purge that finds nothing is one index read). */
const PURGE_EVERY_MS = 60_000;

/** How a node runs previews. */
export interface PreviewSettings {
  node: string;
  leaseMs: number;
  /** Test-only: a pause before each random chunk, so a test can stop a node mid-preview. Zero otherwise. */
  testOnlyChunkDelayMs?: number;
  /** Test-only: the bound on one statement, PREVIEW_TIMEOUT_MS otherwise. */
  testOnlyStatementTimeoutMs?: number;
}

/** SQLSTATE query_canceled: a statement stopped by `statement_timeout` (or by a renewal's pg_cancel_backend). */
const QUERY_CANCELED = '57014';

/**
 * Runs a preview this node holds to its end, renewing the lease every third of the lease time.
 * When a renewal finds the lease lost or a cancel asked for, the statement running for the
 * preview is cancelled on the server (pg_cancel_backend) and the reading stops at the next chunk.
 */
export async function runClusterPreview(
  pool: pg.Pool,
  held: HeldPreview,
  settings: PreviewSettings,
): Promise<PreviewEnd> {
  const client = await pool.connect();
  let progress: PreviewProgress | undefined;
  const beat = new LeaseBeat(pool, client, held, settings.node, settings.leaseMs, () => previewLeaseProgress(progress));
  const checkLease = () => beat.check();
  const plan: PreviewPlan = {
    jobId: held.jobId,
    sandboxId: held.sandboxId,
    now: held.input.now,
    expressionText: held.input.expressionText,
    sampleSize: held.input.sampleSize,
    confidenceLevel: held.input.confidenceLevel,
    seed: held.input.seed,
  };
  let clean = false;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The single-process runner stops a preview that reports no progress for PREVIEW_TIMEOUT_MS; here
    // progress comes between statements, so one statement running that long is the same stall.
    const timeoutMs = settings.testOnlyStatementTimeoutMs ?? PREVIEW_TIMEOUT_MS;
    await client.query("SELECT set_config('statement_timeout', $1, true)", [String(timeoutMs)]);
    const counter = await samplePreviewPg(client, plan, {
      progress: (p) => {
        progress = p;
        // Each running estimate is told, as on SQLite: chunks double, so they are few.
        beat.renewNow();
      },
      checkpoint: checkLease,
      chunkDelayMs: settings.testOnlyChunkDelayMs ?? 0,
    });
    await client.query('COMMIT');
    // The final write must not meet a cancel meant for the reading: the beat stops first. The
    // lease is still checked, by the write itself.
    await beat.stop();
    checkLease();
    await finishPreview(client, held, settings.node, counter);
    clean = true;
    return 'succeeded';
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    await beat.stop();
    if (beat.lease === 'lost' || err instanceof LeaseLost) return 'lost';
    if (beat.lease === 'cancelling' || err instanceof Cancelled) {
      await cancelHeldJob(pool, held, settings.node);
      return 'cancelled';
    }
    const timeoutMs = settings.testOnlyStatementTimeoutMs ?? PREVIEW_TIMEOUT_MS;
    const reason =
      (err as { code?: unknown }).code === QUERY_CANCELED
        ? `No progress for ${Math.round(timeoutMs / 1000)} s; the job was stopped`
        : err instanceof Error
          ? err.message
          : String(err);
    return (await failHeldJob(pool, held, settings.node, reason)) ? 'failed' : 'lost';
  } finally {
    await beat.stop();
    // A connection a cancel may have reached (or that failed mid-transaction) is closed, not reused.
    client.release(!clean);
  }
}

/**
 * The final write, in one transaction: the job SUCCEEDED with its result if this node still
 * holds its lease (else LeaseLost, or Cancelled when a cancel got there first, and nothing is
 * written), and the qualifying profiles stored as the SQLite task stores them.
 */
async function finishPreview(
  client: pg.PoolClient,
  held: HeldPreview,
  node: string,
  counter: Awaited<ReturnType<typeof samplePreviewPg>>,
): Promise<void> {
  await client.query('BEGIN');
  try {
    const finishedAt = Date.now();
    const { result, units } = counter.result();
    const { rowCount } = await client.query(
      `UPDATE jobs SET status = 'SUCCEEDED', result = $1, finished_at = $2, updated_at = $2, progress_done = $3,
         progress_total = $3, lease_owner = NULL, lease_until = NULL
       WHERE id = $4 AND status = 'PROCESSING' AND lease_owner = $5 AND attempts = $6`,
      [JSON.stringify(result), finishedAt, units, held.jobId, node, held.attempts],
    );
    if (rowCount !== 1) {
      const { rows } = await client.query<{ status: string }>(
        'SELECT status FROM jobs WHERE id = $1 AND lease_owner = $2 AND attempts = $3',
        [held.jobId, node, held.attempts],
      );
      throw rows[0]?.status === 'CANCELLING' ? new Cancelled() : new LeaseLost(held);
    }
    const { bytes, count } = counter.packedResults();
    await client.query(
      `INSERT INTO preview_results (job_id, sandbox_id, profile_ids, count) VALUES ($1, $2, $3, $4)
       ON CONFLICT (job_id) DO UPDATE SET sandbox_id = excluded.sandbox_id, profile_ids = excluded.profile_ids,
         count = excluded.count`,
      [held.jobId, held.sandboxId, bytes, count],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * A node's preview slot (cluster-node.ts): one preview at a time beside the node's range loop
 * and export slot, so a long preview holds up neither. `sweep` takes back previews whose leases
 * passed; `step` claims one when the slot is free and runs it without waiting for it.
 */
export function previewSlot(
  pool: pg.Pool,
  settings: PreviewSettings,
  emit: (
    event: PreviewEvent | { type: 'job-ended'; jobId: number; end: string } | { type: 'error'; error: Error },
  ) => void,
  woken: () => void,
) {
  let running: Promise<void> | undefined;
  let stopped = false;
  let lastPurge = 0;
  const run = async (held: HeldPreview) => {
    try {
      emit({ type: 'preview-claimed', jobId: held.jobId, attempts: held.attempts });
      const end = await runClusterPreview(pool, held, settings);
      emit({ type: 'preview-ended', jobId: held.jobId, attempts: held.attempts, end });
      if (end !== 'lost') emit({ type: 'job-ended', jobId: held.jobId, end });
    } catch (err) {
      emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    } finally {
      running = undefined;
      // The slot is free: look for the next preview now, not at the next poll.
      woken();
    }
  };
  return {
    async sweep(now: number): Promise<void> {
      if (now - lastPurge >= PURGE_EVERY_MS) {
        lastPurge = now;
        await purgeExpiredPreviewsPg(pool, now);
      }
      const previews = await requeueExpiredPreviews(pool, now);
      if (previews.length === 0) return;
      emit({ type: 'previews-requeued', jobs: previews.map((p) => ({ jobId: p.jobId, status: p.status })) });
      for (const p of previews)
        if (p.status !== 'QUEUED') emit({ type: 'job-ended', jobId: p.jobId, end: p.status.toLowerCase() });
    },
    /** True when it claimed a preview. */
    async step(): Promise<boolean> {
      if (running || stopped) return false;
      const held = await claimPreviewJob(pool, settings.node, settings.leaseMs);
      if (!held) return false;
      // Not awaited: the preview runs in its slot while the loop goes on.
      running = run(held);
      return true;
    },
    /** Takes no more previews and waits for the one in hand. */
    async stop(): Promise<void> {
      stopped = true;
      await running;
    },
  };
}
