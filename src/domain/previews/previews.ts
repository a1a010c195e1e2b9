import { eq } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { jobs, previewResults } from '../../db/schema.js';
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { writeUnit } from '../../db/unit.js';
import { requireDefinition } from '../definitions.js';
import { badInput } from '../errors.js';
import { assertRunnable, checkExpression, type ExpressionInput } from '../expressions.js';
import { defineJobKind } from '../jobs/job-kind.js';
import type { JobQueue } from '../jobs/job-queue.js';
import { type JobOf, jobsByIds } from '../jobs/job-store.js';
import type { JobInputBase } from '../jobs/job-types.js';
import type { Page, PageArgs } from '../paging.js';
import { countProfiles, type Profile, profilePageOfIds } from '../profiles.js';
import type { Estimate } from './estimate.js';
import type { PreviewProgress, PreviewResult } from './preview-run.js';
import type { PreviewPlan } from './preview-sampling.js';

/** How long a finished preview is kept (its purge: purgeExpiredPreviews, and on a cluster purgeExpiredPreviewsPg). */
export const PREVIEW_TTL_MS = 24 * 3_600_000;
/** A preview that reports no progress for this long fails (on a cluster: a statement that runs this long). */
export const PREVIEW_TIMEOUT_MS = 10 * 60_000;

const q = statements('previews', {
  status: {
    sqlite: 'SELECT status FROM jobs WHERE id = ?',
    postgres: 'SELECT status FROM jobs WHERE id = $1',
  },
  deleteResults: {
    sqlite: 'DELETE FROM preview_results WHERE job_id = ?',
    postgres: 'DELETE FROM preview_results WHERE job_id = $1',
  },
  deleteJob: {
    sqlite: 'DELETE FROM jobs WHERE id = ?',
    postgres: 'DELETE FROM jobs WHERE id = $1',
  },
  /** The packed, sorted profile ids of a preview's sample (a blob, bytea) and how many. */
  results: {
    sqlite: 'SELECT profile_ids AS "profileIds", count FROM preview_results WHERE sandbox_id = ? AND job_id = ?',
    postgres: 'SELECT profile_ids AS "profileIds", count FROM preview_results WHERE sandbox_id = $1 AND job_id = $2',
  },
  /** The newest preview of a definition. */
  latestOfDefinition: {
    sqlite: `SELECT id FROM jobs WHERE sandbox_id = ? AND kind = 'PREVIEW' AND json_extract(input, '$.definitionId') = ?
      ORDER BY id DESC LIMIT 1`,
    postgres: `SELECT id FROM jobs WHERE sandbox_id = $1 AND kind = 'PREVIEW'
      AND input -> 'definitionId' = to_jsonb(CAST($2 AS bigint))
      ORDER BY id DESC LIMIT 1`,
  },
});

export interface PreviewInput {
  expression?: ExpressionInput | null;
  definitionId?: number | null;
  sampleSize?: number | null;
  confidenceLevel?: number | null;
  at?: number | null;
  seed?: number | null;
}

/** What a preview job stores as its input. */
export interface PreviewJobInput extends JobInputBase {
  expression: ExpressionInput;
  expressionText: string;
  definitionId: number | null;
  sampleSize: number | null;
  confidenceLevel: number;
  at: number | null;
  seed: number;
}

declare module '../jobs/job-types.js' {
  interface JobKindTypes {
    PREVIEW: { input: PreviewJobInput; progress: PreviewProgress; result: PreviewResult };
  }
}

export type Preview = JobOf<'PREVIEW'>;

/**
 * Checks and queues a preview, waking the runner. A PQL error is reported here, on the request,
 * not as a failed job; so are out-of-range sample sizes and confidence levels.
 */
/** What preview functions use: the connection and the runner (not the whole app, which loads this kind). */
type PreviewServices = { conn: Store; jobs: JobQueue };
/** What the getters use: a store of either database (a PostgreSQL one serves a cluster's previews). */
type PreviewReads = { conn: Store };

export async function createPreview(app: PreviewServices, sandboxId: number, input: PreviewInput): Promise<Preview> {
  const { conn } = app;
  const confidenceLevel = checkPreviewInput(input);
  return app.jobs.enqueue(conn, sandboxId, 'PREVIEW', async (_chain, tx) => {
    const definition =
      input.definitionId != null ? await requireDefinition(tx, sandboxId, input.definitionId) : undefined;
    const expression = definition ? definition.expression : input.expression!;
    const { text, checked } = await checkExpression(tx, sandboxId, expression, { definition: true });
    await assertRunnable(tx, sandboxId, checked);
    return previewJobInput(input, expression, text, definition?.id ?? null, confidenceLevel);
  });
}

/**
 * The checks of a preview's input that need no store (either database's queuing runs them
 * first); returns the confidence level asked for, or the default.
 */
export function checkPreviewInput(input: PreviewInput): number {
  if ((input.expression == null) === (input.definitionId == null)) {
    throw badInput('Give either an expression or a segmentDefinitionId', 'input.expression');
  }
  const confidenceLevel = input.confidenceLevel ?? 0.95;
  if (!(confidenceLevel > 0.5 && confidenceLevel < 0.999)) {
    throw badInput(
      `confidenceLevel must be between 0.5 and 0.999 (exclusive), got ${confidenceLevel}`,
      'input.confidenceLevel',
    );
  }
  if (input.sampleSize != null && (!Number.isInteger(input.sampleSize) || input.sampleSize <= 0)) {
    throw badInput(`sampleSize must be a positive whole number, got ${input.sampleSize}`, 'input.sampleSize');
  }
  return confidenceLevel;
}

/** The stored input of a checked preview: the seed drawn here when none was asked for. */
export function previewJobInput(
  input: PreviewInput,
  expression: ExpressionInput,
  expressionText: string,
  definitionId: number | null,
  confidenceLevel: number,
): PreviewJobInput {
  return {
    expression,
    expressionText,
    definitionId,
    sampleSize: input.sampleSize ?? null,
    confidenceLevel,
    at: input.at ?? null,
    seed: input.seed ?? Math.floor(Math.random() * 2 ** 31),
  };
}

// Registered with the runner as this module loads (src/domain/app.ts loads it).
defineJobKind({
  kind: 'PREVIEW',
  task: new URL('./preview-sampling.ts', import.meta.url),
  timeoutMs: PREVIEW_TIMEOUT_MS,
  plan: (job, now): PreviewPlan => ({
    jobId: job.id,
    sandboxId: job.sandboxId,
    now,
    expressionText: job.input.expressionText,
    sampleSize: job.input.sampleSize,
    confidenceLevel: job.input.confidenceLevel,
    seed: job.input.seed,
  }),
  runningResult: (p) => ({ estimate: p.estimate, sampleSize: p.done }),
  sweep: (services, now) => purgeExpiredPreviews(services, now),
});

/**
 * Deletes previews older than 24 hours with their results (the runner calls this periodically);
 * fails with SQLITE_BUSY rather than wait when another process holds the write lock.
 */
export function purgeExpiredPreviews({ conn }: { conn: Connection }, now = Date.now()): Promise<number> {
  return writeUnit(
    conn,
    (tx) => {
      const expired = tx.sqlite
        .prepare(
          "SELECT id FROM jobs WHERE kind = 'PREVIEW' AND created_at < ? AND status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')",
        )
        .pluck()
        .all(now - PREVIEW_TTL_MS) as number[];
      // Rows of a day's previews: deleted in one synchronous pass, not one await each.
      for (const id of expired) deletePreviewRows(tx, id);
      return expired.length;
    },
    { busyWait: false },
  );
}

/**
 * The statements that delete one preview, for the caller's unit to run; synchronous, for the
 * purge's one pass over many previews (deletePreview runs the same deletes by name).
 */
function deletePreviewRows(conn: Connection, id: number): void {
  conn.db.delete(previewResults).where(eq(previewResults.jobId, id)).run();
  conn.db.delete(jobs).where(eq(jobs.id, id)).run();
}

/** Deletes a preview (stopping it first when it runs); returns its id. */
export async function deletePreview(app: PreviewServices, id: number): Promise<number> {
  const job = await app.conn.get<{ status: string }>(q.status, [id]);
  if (job && (job.status === 'QUEUED' || job.status === 'PROCESSING')) await app.jobs.cancel(id);
  await writeUnit(app.conn, async (tx) => {
    await tx.run(q.deleteResults, [id]);
    await tx.run(q.deleteJob, [id]);
  });
  return id;
}

/** The qualifying profiles of a preview's sample, in profile-id order (paged over the packed, sorted ids). */
export async function listPreviewResults(
  app: PreviewReads,
  sandboxId: number,
  jobId: number,
  args: PageArgs,
): Promise<Page<Profile> & { totalCount: () => number }> {
  const { conn } = app;
  const row = await conn.get<{ profileIds: Buffer; count: number }>(q.results, [sandboxId, jobId]);
  // Copied into a fresh buffer: a blob's bytes need not sit at an 8-byte-aligned offset.
  const all = row ? new Float64Array(new Uint8Array(row.profileIds).buffer) : new Float64Array(0);
  return await profilePageOfIds(conn, sandboxId, all, args, () => row?.count ?? 0);
}

/** The latest preview of a definition, if any. */
export async function latestDefinitionPreview(
  app: PreviewReads,
  sandboxId: number,
  definitionId: number,
): Promise<Preview | undefined> {
  const row = (await app.conn.get<{ id: number }>(q.latestOfDefinition, [sandboxId, definitionId]))?.id;
  return row === undefined ? undefined : (await jobsByIds(app.conn, sandboxId, [row], 'PREVIEW')).get(row);
}

/** An estimate is stale once the store has grown or shrunk by more than 5 % since it was made. */
export async function isStale(app: PreviewReads, sandboxId: number, estimate: Estimate): Promise<boolean> {
  const current = await countProfiles(app.conn, sandboxId);
  return Math.abs(current - estimate.totalProfiles) > 0.05 * Math.max(1, estimate.totalProfiles);
}
