/**
 * A preview on a cluster of nodes sharing one PostgreSQL (docs/scale-out.md "Previews on a
 * cluster"). Like an export it is not split: one node runs it whole, and the job row carries the
 * queue's guarantees (cluster-export-job.ts):
 *
 * 1. queued: a `jobs` row of kind PREVIEW, its input checked as createPreview checks it
 *    (`enqueueClusterPreviewJob`);
 * 2. claimed by one node with `FOR UPDATE SKIP LOCKED` under a lease (`lease_owner`,
 *    `lease_until`, `attempts` as the lease's number), renewed every third of the lease time with
 *    the progress and the running estimate (`claimPreviewJob`, `runClusterPreview` as a whole job);
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
import { checkDefinitionPg, readCatalogPg } from '../pg-expressions.js';
import { samplePreviewPg } from '../previews/pg-preview-sampling.js';
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
import { runWholeJob, type WholeJobEnd, type WholeJobKinds } from './cluster-whole-jobs.js';
import { claimLeasedJob, type HeldJob, requeueExpiredJobs } from './leased-job.js';

/** A preview this node holds: attempt `attempts` is its lease's number. */
export type HeldPreview = HeldJob<PreviewJobInput & { now: number }>;

/** What became of a preview this node held. */
export type PreviewEnd = WholeJobEnd;

/** What the preview slot reports (cluster-node.ts' events). */
export type PreviewEvent =
  | { type: 'preview-claimed'; jobId: number; attempts: number }
  | { type: 'preview-ended'; jobId: number; attempts: number; end: PreviewEnd };

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
 * Runs a preview this node holds to its end as a whole job (cluster-whole-jobs.ts: the lease
 * renewed every third of the lease time, a lost lease or a cancel stopping the running
 * statement, the final write in one transaction that names the lease): sampled in one
 * REPEATABLE READ snapshot, each running estimate written at once, the qualifying profiles
 * stored with the job's SUCCEEDED state as the SQLite task stores them.
 */
export function runClusterPreview(pool: pg.Pool, held: HeldPreview, settings: PreviewSettings): Promise<PreviewEnd> {
  const plan: PreviewPlan = {
    jobId: held.jobId,
    sandboxId: held.sandboxId,
    now: held.input.now,
    expressionText: held.input.expressionText,
    sampleSize: held.input.sampleSize,
    confidenceLevel: held.input.confidenceLevel,
    seed: held.input.seed,
  };
  // The single-process runner stops a preview that reports no progress for PREVIEW_TIMEOUT_MS; here
  // progress comes between statements, so one statement running that long is the same stall.
  const timeoutMs = settings.testOnlyStatementTimeoutMs ?? PREVIEW_TIMEOUT_MS;
  return runWholeJob(pool, held, settings, async (client, lease) => {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query("SELECT set_config('statement_timeout', $1, true)", [String(timeoutMs)]);
    let counter: Awaited<ReturnType<typeof samplePreviewPg>>;
    try {
      counter = await samplePreviewPg(client, plan, {
        // Each running estimate is told, as on SQLite: chunks double, so they are few.
        progress: (p) =>
          lease.progress({ done: p.done, total: p.total, result: { estimate: p.estimate, sampleSize: p.done } }, true),
        checkpoint: () => lease.check(),
        chunkDelayMs: settings.testOnlyChunkDelayMs ?? 0,
      });
    } catch (err) {
      // A statement a renewal cancelled is told as the lost lease or cancel it was (runWholeJob).
      if ((err as { code?: unknown }).code === QUERY_CANCELED) {
        throw new Error(`No progress for ${Math.round(timeoutMs / 1000)} s; the job was stopped`);
      }
      throw err;
    }
    await client.query('COMMIT');
    return {
      async finish(c) {
        const { bytes, count } = counter.packedResults();
        await c.query(
          `INSERT INTO preview_results (job_id, sandbox_id, profile_ids, count) VALUES ($1, $2, $3, $4)
           ON CONFLICT (job_id) DO UPDATE SET sandbox_id = excluded.sandbox_id, profile_ids = excluded.profile_ids,
             count = excluded.count`,
          [held.jobId, held.sandboxId, bytes, count],
        );
        return counter.result();
      },
    };
  });
}

/**
 * The kinds of a node's preview slot, a whole-job slot of its own (cluster-node.ts) so a long
 * preview holds up neither ranges, exports nor dry runs: previews, with the purge of expired
 * ones as its housekeeping. `emit` hears each preview claimed and ended.
 */
export function previewJobKinds(
  pool: pg.Pool,
  settings: Omit<PreviewSettings, 'node' | 'leaseMs'>,
  emit: (event: PreviewEvent) => void,
): WholeJobKinds {
  return {
    runners: {
      PREVIEW: async (_pool, held, slot) => {
        const preview = held as HeldPreview;
        emit({ type: 'preview-claimed', jobId: preview.jobId, attempts: preview.attempts });
        const end = await runClusterPreview(pool, preview, { ...settings, ...slot });
        emit({ type: 'preview-ended', jobId: preview.jobId, attempts: preview.attempts, end });
        return end;
      },
    },
    housekeeping: async (_store, now) => {
      await purgeExpiredPreviewsPg(pool, now);
    },
  };
}
