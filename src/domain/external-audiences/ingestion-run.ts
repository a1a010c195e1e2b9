/**
 * Ingestion runs: an uploaded list read into an external audience, as a job on the runner. The
 * upload is staged to a file first (upload-staging.ts), the run reads it on its own thread
 * (ingestion-task.ts), and members expire through the kind's sweep (member-expiry.ts).
 */
import { existsSync, rmSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { badInput, conflict } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { defineJobKind } from '../jobs/job-kind.js';
import type { JobQueue } from '../jobs/job-queue.js';
import { type JobOf, jobsByIds } from '../jobs/job-store.js';
import type { JobInputBase } from '../jobs/job-types.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
import { activeIngestionRun, type ExternalAudienceField, requireExternalAudience } from './external-audiences.js';
import type { ListFormat } from './list-records.js';
import { expireExternalMembers } from './member-expiry.js';
import { adoptUpload, rowsAsNdjson, stageUpload } from './upload-staging.js';

/** A run's jobs: its sandbox, its kind, its audience (PostgreSQL reads the member as its index does). */
const RUNS = `sandbox_id = ? AND kind = 'INGESTION' AND json_extract(input, '$.externalAudienceId') = ?`;
const RUNS_PG = `sandbox_id = $1 AND kind = 'INGESTION' AND CAST(input ->> 'externalAudienceId' AS bigint) = $2`;

const q = statements('ingestion-runs', {
  /** The staged files of runs that failed or were cancelled since the time given. */
  endedUploads: {
    sqlite: `SELECT json_extract(input, '$.upload') AS upload FROM jobs WHERE kind = 'INGESTION'
      AND status IN ('FAILED', 'CANCELLED') AND finished_at > ?`,
    postgres: `SELECT input ->> 'upload' AS upload FROM jobs WHERE kind = 'INGESTION'
      AND status IN ('FAILED', 'CANCELLED') AND finished_at > $1`,
  },
  /** A page of run ids newest first (forward), between the bounds (paging.ts integerBounds). */
  runsDown: {
    sqlite: `SELECT id FROM jobs WHERE ${RUNS} AND id < ? AND id > ? ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT id FROM jobs WHERE ${RUNS_PG} AND id < $3 AND id > $4 ORDER BY id DESC LIMIT $5`,
  },
  /** A page of run ids oldest first (backward). */
  runsUp: {
    sqlite: `SELECT id FROM jobs WHERE ${RUNS} AND id < ? AND id > ? ORDER BY id ASC LIMIT ?`,
    postgres: `SELECT id FROM jobs WHERE ${RUNS_PG} AND id < $3 AND id > $4 ORDER BY id ASC LIMIT $5`,
  },
  countRuns: {
    sqlite: `SELECT count(*) AS n FROM jobs WHERE ${RUNS}`,
    postgres: `SELECT count(*) AS n FROM jobs WHERE ${RUNS_PG}`,
  },
  /** A page of a run's errors in line order (forward), between the bounds. */
  errorsUp: {
    sqlite:
      'SELECT line, message FROM ingestion_errors WHERE job_id = ? AND line < ? AND line > ? ORDER BY line ASC LIMIT ?',
    postgres:
      'SELECT line, message FROM ingestion_errors WHERE job_id = $1 AND line < $2 AND line > $3 ORDER BY line ASC LIMIT $4',
  },
  /** A page of a run's errors last line first (backward). */
  errorsDown: {
    sqlite:
      'SELECT line, message FROM ingestion_errors WHERE job_id = ? AND line < ? AND line > ? ORDER BY line DESC LIMIT ?',
    postgres:
      'SELECT line, message FROM ingestion_errors WHERE job_id = $1 AND line < $2 AND line > $3 ORDER BY line DESC LIMIT $4',
  },
  countErrors: {
    sqlite: 'SELECT count(*) AS n FROM ingestion_errors WHERE job_id = ?',
    postgres: 'SELECT count(*) AS n FROM ingestion_errors WHERE job_id = $1',
  },
});

export const INGESTION_MODES = ['REPLACE', 'APPEND'] as const;
export type IngestionMode = (typeof INGESTION_MODES)[number];

export interface IngestionRunInput extends JobInputBase {
  externalAudienceId: number;
  audienceId: number;
  mode: IngestionMode;
  format: ListFormat;
  /** The staged file under the data directory. */
  upload: string;
  fileName: string | null;
  bytes: number;
}

/** What a run has counted so far (and in the end). */
export interface IngestionCounts {
  recordsRead: number;
  recordsImported: number;
  recordsMatched: number;
  recordsFailed: number;
}

/** Progress in bytes of the file read, with the counts so far. */
export interface IngestionProgress extends IngestionCounts {
  done: number;
  total: number;
}

export type IngestionRunResult = IngestionCounts;

declare module '../jobs/job-types.js' {
  interface JobKindTypes {
    INGESTION: { input: IngestionRunInput; progress: IngestionProgress; result: IngestionRunResult };
  }
}

export type IngestionRun = JobOf<'INGESTION'>;

/** What one run does, fixed when it starts. */
export interface IngestionPlan {
  jobId: number;
  sandboxId: number;
  audienceId: number;
  mode: IngestionMode;
  format: ListFormat;
  upload: string;
  bytes: number;
  now: number;
  fields: ExternalAudienceField[];
  identityField: string;
  identityNamespace: string;
}

/** What a run will do, from its job and its audience as they are when it starts. */
export async function planIngestion(conn: Store, job: IngestionRun, now: number): Promise<IngestionPlan> {
  const external = await requireExternalAudience(conn, job.sandboxId, job.input.externalAudienceId);
  return {
    jobId: job.id,
    sandboxId: job.sandboxId,
    audienceId: external.audienceId,
    mode: job.input.mode,
    format: job.input.format,
    upload: job.input.upload,
    bytes: job.input.bytes,
    now,
    fields: external.fields,
    identityField: external.identityField,
    identityNamespace: external.identityNamespace,
  };
}

export const ingestionRunKind = defineJobKind({
  kind: 'INGESTION',
  task: new URL('./ingestion-task.ts', import.meta.url),
  timeoutMs: 10 * 60_000,
  plan: (job, now, { conn }): Promise<IngestionPlan> => planIngestion(conn, job, now),
  // The counts are kept as they grow, so a run that fails still says how far it got.
  runningResult: ({ recordsRead, recordsImported, recordsMatched, recordsFailed }) => ({
    recordsRead,
    recordsImported,
    recordsMatched,
    recordsFailed,
  }),
  sweep: async ({ conn }, now) => {
    await expireExternalMembers(conn, now);
    await removeFinishedUploads(conn);
  },
});

/**
 * Staged files of runs that have ended are not needed any more (a run that succeeded removes its
 * own). The kind's sweep, and a cluster node's (cluster/cluster-job-kinds.ts).
 */
export async function removeFinishedUploads(conn: Store): Promise<void> {
  const rows = await conn.all<{ upload: string | null }>(q.endedUploads, [Date.now() - 7 * 86_400_000]);
  for (const { upload: path } of rows) if (path && existsSync(path)) rmSync(path, { force: true });
}

export interface IngestionSource {
  /**
   * A file's bytes as they arrive; or, when `path` names a file under the data directory that
   * the caller hands over, that file (moved, not copied).
   */
  file?: { stream: () => AsyncIterable<Uint8Array>; name: string | null; path?: string | null } | null;
  /** Rows given inline, as JSON objects keyed by field name. */
  rows?: readonly unknown[] | null;
}

/**
 * Starts a run: stages the list (BAD_USER_INPUT past the limits or with a header that does not
 * fit) and queues the run; CONFLICT while another run of the audience is queued or running.
 */
export async function startIngestionRun(
  app: { conn: Store; jobs: JobQueue; dataDir: string },
  sandboxId: number,
  externalAudienceId: number,
  source: IngestionSource,
  mode: IngestionMode = 'REPLACE',
): Promise<IngestionRun> {
  const { conn } = app;
  const input = await stageIngestionRun(conn, app.dataDir, sandboxId, externalAudienceId, source, mode);
  try {
    // Checked again in the job's unit (which takes the write gate): the upload took a while.
    return await app.jobs.enqueue(conn, sandboxId, 'INGESTION', async (_chain, tx) => {
      await requireExternalAudience(tx, sandboxId, externalAudienceId);
      await assertNoActiveRun(tx, sandboxId, externalAudienceId);
      return input;
    });
  } catch (err) {
    rmSync(input.upload, { force: true });
    throw err;
  }
}

/**
 * The part of starting a run before its job exists, on either database (the cluster's queuing is
 * cluster/cluster-ingestion-run.ts): the audience and the source checked, no run of the audience
 * active, the list staged under the data directory; returns the run's input.
 */
export async function stageIngestionRun(
  conn: Store,
  dataDir: string,
  sandboxId: number,
  externalAudienceId: number,
  source: IngestionSource,
  mode: IngestionMode,
): Promise<IngestionRunInput> {
  const external = await requireExternalAudience(conn, sandboxId, externalAudienceId);
  if ((source.file == null) === (source.rows == null)) throw badInput('Give either a file or rows', 'file');
  await assertNoActiveRun(conn, sandboxId, externalAudienceId);
  const shape = {
    fields: external.fields,
    identityField: external.identityField,
    identityNamespace: external.identityNamespace,
  };
  const staged = source.file
    ? source.file.path && isInside(dataDir, source.file.path)
      ? adoptUpload(dataDir, source.file.path, { fileName: source.file.name, shape })
      : await stageUpload(dataDir, source.file.stream(), { fileName: source.file.name, shape })
    : await stageUpload(dataDir, rowsAsNdjson(source.rows ?? []), {
        fileName: 'rows.ndjson',
        shape,
        field: 'rows',
      });
  return {
    externalAudienceId,
    audienceId: external.audienceId,
    mode,
    format: staged.format,
    upload: staged.path,
    fileName: source.file?.name ?? null,
    bytes: staged.bytes,
    at: null,
  };
}

function isInside(dir: string, file: string): boolean {
  const rel = relative(resolve(dir), resolve(file));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** CONFLICT while another run of the audience is queued or running. */
export async function assertNoActiveRun(conn: Store, sandboxId: number, externalAudienceId: number): Promise<void> {
  const active = await activeIngestionRun(conn, sandboxId, externalAudienceId);
  if (active !== undefined) {
    throw conflict(
      `Ingestion run "${encodeGlobalId('IngestionRun', active)}" of this audience has not ended yet; one run at a time per audience`,
      { runId: encodeGlobalId('IngestionRun', active) },
    );
  }
}

/** Runs of an external audience, newest first. */
export async function listIngestionRuns(
  conn: Store,
  sandboxId: number,
  externalAudienceId: number,
  args: PageArgs,
): Promise<Page<IngestionRun> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const base = [sandboxId, externalAudienceId];
  const { above, below } = integerBounds(query);
  const rows = await conn.all<{ id: number }>(query.direction === 'forward' ? q.runsDown : q.runsUp, [
    ...base,
    below,
    above,
    query.fetch,
  ]);
  const ids = rows.map((r) => Number(r.id));
  const found = await jobsByIds(conn, sandboxId, ids, 'INGESTION');
  const page = toPage(
    ids.flatMap((id) => found.get(id) ?? []),
    query,
    (r) => [r.id],
  );
  return {
    ...page,
    totalCount: async () => Number((await conn.get<{ n: number }>(q.countRuns, base))!.n),
  };
}

export interface IngestionError {
  line: number;
  message: string;
}

/** The bad rows of a run, in line order. */
export async function listIngestionErrors(
  conn: Store,
  jobId: number,
  args: PageArgs,
): Promise<Page<IngestionError> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const { above, below } = integerBounds(query, 'ascending');
  const rows = await conn.all<IngestionError>(query.direction === 'forward' ? q.errorsUp : q.errorsDown, [
    jobId,
    below,
    above,
    query.fetch,
  ]);
  return {
    ...toPage(rows, query, (e) => [e.line]),
    totalCount: async () => Number((await conn.get<{ n: number }>(q.countErrors, [jobId]))!.n),
  };
}
