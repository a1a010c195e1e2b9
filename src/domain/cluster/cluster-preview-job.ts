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
import { LeaseLost, type LeaseState, MAX_RANGE_ATTEMPTS } from './range-queue.js';

/** A preview this node holds: attempt `attempts` is its lease's number. */
export interface HeldPreview {
  jobId: number;
  sandboxId: number;
  input: PreviewJobInput & { now: number };
  attempts: number;
}

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

/**
 * Takes the oldest queued preview for `node`, under a lease until `now + leaseMs`; the inner
 * select locks the row it picks and skips rows other nodes are taking. The evaluation instant
 * is pinned at the first claim (the `at` asked for, else now) and kept by every re-run, as the
 * single-process runner pins it.
 */
export async function claimPreviewJob(
  db: Queryable,
  node: string,
  leaseMs: number,
  now = Date.now(),
): Promise<HeldPreview | undefined> {
  const { rows } = await db.query<HeldPreview>(
    `UPDATE jobs AS j SET status = 'PROCESSING', lease_owner = $1, lease_until = $2, attempts = j.attempts + 1,
       started_at = $3, updated_at = $3, finished_at = NULL, error = NULL, progress_done = 0, result = NULL,
       input = CASE WHEN j.input ? 'now' THEN j.input
                    ELSE j.input || jsonb_build_object('now', coalesce((j.input ->> 'at')::bigint, $3::bigint)) END
     WHERE j.id = (
       SELECT q.id FROM jobs AS q WHERE q.status = 'QUEUED' AND q.kind = 'PREVIEW'
       ORDER BY q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING j.id AS "jobId", j.sandbox_id AS "sandboxId", j.input, j.attempts`,
    [node, now + leaseMs, now],
  );
  return rows[0];
}

/**
 * Extends the lease of a preview `node` holds and records its progress and running estimate
 * (the result the single-process runner keeps while a preview runs): 'lost' when the lease had
 * passed, 'cancelling' when a cancel was asked for.
 */
export async function renewPreviewLease(
  db: Queryable,
  held: HeldPreview,
  node: string,
  leaseMs: number,
  progress: PreviewProgress | undefined,
  now = Date.now(),
): Promise<LeaseState> {
  const { rows } = await db.query<{ status: string }>(
    `UPDATE jobs SET lease_until = $1, updated_at = $2,
       progress_done = coalesce($3, progress_done), progress_total = coalesce($4, progress_total),
       result = coalesce($5::jsonb, result)
     WHERE id = $6 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $7 AND attempts = $8
     RETURNING status`,
    [
      now + leaseMs,
      now,
      progress?.done ?? null,
      progress?.total ?? null,
      progress ? JSON.stringify({ estimate: progress.estimate, sampleSize: progress.done }) : null,
      held.jobId,
      node,
      held.attempts,
    ],
  );
  const status = rows[0]?.status;
  if (status === undefined) return 'lost';
  return status === 'CANCELLING' ? 'cancelling' : 'held';
}

/**
 * Puts every preview whose lease has passed back in the queue; one lost MAX_RANGE_ATTEMPTS
 * times fails, and one being cancelled ends CANCELLED. Any node runs it now and then.
 */
export async function requeueExpiredPreviews(
  db: Queryable,
  now = Date.now(),
): Promise<{ jobId: number; status: 'QUEUED' | 'FAILED' | 'CANCELLED' }[]> {
  const { rows } = await db.query(
    `UPDATE jobs SET
       status = CASE WHEN status = 'CANCELLING' THEN 'CANCELLED' WHEN attempts >= $2 THEN 'FAILED' ELSE 'QUEUED' END,
       error = CASE WHEN status = 'PROCESSING' AND attempts >= $2
                    THEN 'The preview was lost ' || attempts || ' times (its nodes stopped renewing their lease)' ELSE error END,
       finished_at = CASE WHEN status = 'CANCELLING' OR attempts >= $2 THEN $1 ELSE finished_at END,
       lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE kind = 'PREVIEW' AND status IN ('PROCESSING', 'CANCELLING') AND lease_until < $1
     RETURNING id AS "jobId", status`,
    [now, MAX_RANGE_ATTEMPTS],
  );
  if (rows.some((r) => r.status === 'QUEUED')) await db.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, 'preview']);
  return rows;
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
  const pid = (client as unknown as { processID: number }).processID;
  let state = 'held' as LeaseState;
  let progress: PreviewProgress | undefined;
  let renewing: Promise<void> = Promise.resolve();
  const renew = async () => {
    if (state !== 'held') return;
    try {
      state = await renewPreviewLease(pool, held, settings.node, settings.leaseMs, progress);
    } catch {
      // A renewal that could not reach the database is tried again at the next beat; the lease decides.
      return;
    }
    if (state !== 'held') await pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {});
  };
  let beat: NodeJS.Timeout | undefined = setInterval(
    () => {
      renewing = renewing.then(renew);
    },
    Math.max(50, Math.floor(settings.leaseMs / 3)),
  );
  const stopBeat = async () => {
    if (beat) clearInterval(beat);
    beat = undefined;
    await renewing;
  };
  const checkLease = () => {
    if (state === 'lost') throw new LeaseLost(held);
    if (state === 'cancelling') throw new Cancelled();
  };
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
      },
      checkpoint: checkLease,
      chunkDelayMs: settings.testOnlyChunkDelayMs ?? 0,
    });
    await client.query('COMMIT');
    // The final write must not meet a cancel meant for the reading: the beat stops first. The
    // lease is still checked, by the write itself.
    await stopBeat();
    checkLease();
    await finishPreview(client, held, settings.node, counter);
    clean = true;
    return 'succeeded';
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    await stopBeat();
    if (state === 'lost' || err instanceof LeaseLost) return 'lost';
    if (state === 'cancelling' || err instanceof Cancelled) {
      await pool.query(
        `UPDATE jobs SET status = 'CANCELLED', finished_at = $1, updated_at = $1, lease_owner = NULL, lease_until = NULL
         WHERE id = $2 AND status = 'CANCELLING' AND lease_owner = $3 AND attempts = $4`,
        [Date.now(), held.jobId, settings.node, held.attempts],
      );
      return 'cancelled';
    }
    const timeoutMs = settings.testOnlyStatementTimeoutMs ?? PREVIEW_TIMEOUT_MS;
    const reason =
      (err as { code?: unknown }).code === QUERY_CANCELED
        ? `No progress for ${Math.round(timeoutMs / 1000)} s; the job was stopped`
        : err instanceof Error
          ? err.message
          : String(err);
    const now = Date.now();
    const { rowCount } = await pool.query(
      `UPDATE jobs SET status = 'FAILED', error = $1, finished_at = $2, updated_at = $2, lease_owner = NULL, lease_until = NULL
       WHERE id = $3 AND status IN ('PROCESSING', 'CANCELLING') AND lease_owner = $4 AND attempts = $5`,
      [reason, now, held.jobId, settings.node, held.attempts],
    );
    return rowCount === 1 ? 'failed' : 'lost';
  } finally {
    await stopBeat();
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
