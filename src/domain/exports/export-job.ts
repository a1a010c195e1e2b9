import { readdirSync, rmSync } from 'node:fs';
import type { Store } from '../../db/store.js';
import { type Audience, audiencesByIds } from '../audiences.js';
import { badInput, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { defineJobKind } from '../jobs/job-kind.js';
import type { JobQueue } from '../jobs/job-queue.js';
import type { JobOf, NewJobOptions } from '../jobs/job-store.js';
import type { JobInputBase } from '../jobs/job-types.js';
import { isEvaluated } from '../lifecycle.js';
import { CURRENT_STATUSES, MEMBERSHIP_STATUSES, type MembershipStatus } from '../membership-statuses.js';
import { segmentJobInput } from '../segment-jobs/segment-job.js';
import {
  type Dataset,
  datasetByName,
  datasetDir,
  datasetsByIds,
  EXPORT_FORMATS,
  type ExportFormat,
  insertDataset,
  validDatasetName,
} from './datasets.js';
import { type AttributeColumn, attributeColumns } from './export-columns.js';
import type { ExportPlan } from './export-plan.js';
import { recordsFileName } from './record-index.js';

export const EXPORT_MODES = ['FULL', 'CHANGES'] as const;
export type ExportMode = (typeof EXPORT_MODES)[number];

/** What a caller asks an export to write (the domain shape of CreateExportJobInput). */
export interface ExportJobRequest {
  /** Audiences to export, each with the membership statuses to write (default REALIZED + EXISTING). */
  audiences: { audienceId: number; statuses?: MembershipStatus[] | null }[];
  /** Attribute paths to write; null: all. */
  fields?: string[] | null;
  /** Only profiles ingested (created or updated) at or after this instant. */
  fromIngestTimestamp?: number | null;
  /** Skip the file of an audience (or the combined file) that has no rows. */
  emptyAudienceFilter?: boolean | null;
  /** FULL (default) or CHANGES since the dataset's last successful export (or `changesSince`). */
  mode?: ExportMode | null;
  changesSince?: number | null;
  destination: {
    /** An existing dataset, or a name: an existing dataset of that name or a new one. */
    datasetId?: number | null;
    datasetName?: string | null;
    format: ExportFormat;
    /** One file per audience instead of one combined file. */
    audiencePerFile?: boolean | null;
  };
  /**
   * Run a segment job for the audiences (those with a definition) at the export's instant first,
   * and export what it wrote. The instant is then fixed when the export is created.
   */
  evaluateFirst?: boolean | null;
  /** The evaluation instant (the time of a CHANGES window's end); default: when the job starts. */
  at?: number | null;
}

/** What an export job stores as its input. */
export interface ExportJobInput extends JobInputBase {
  audiences: { audienceId: number; statuses: MembershipStatus[] }[];
  fields: string[] | null;
  fromIngestTimestamp: number | null;
  emptyAudienceFilter: boolean;
  mode: ExportMode;
  changesSince: number | null;
  datasetId: number;
  format: ExportFormat;
  audiencePerFile: boolean;
  /** A segment job over the audiences runs first (the job's `afterJobId`), at `at`. */
  evaluateFirst: boolean;
  at: number | null;
}

export interface ExportProgress {
  done: number;
  total: number;
}

/** A file an export wrote. */
export interface ExportFileInfo {
  name: string;
  /** Global id of the audience of a per-audience file; null for the combined file. */
  audienceId: string | null;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface ExportMetrics {
  /** Rows written (a profile in two audiences counts twice). */
  totalExportedProfileCounter: number;
  /** Identity namespace → rows whose profile has an identity there. */
  exportedProfileByNamespaceCounter: Record<string, number>;
  totalTimeMs: number;
}

export interface ExportJobResult {
  metrics: ExportMetrics;
  files: ExportFileInfo[];
  manifest: ExportFileInfo;
  /** The mode it ran in: a CHANGES request into a dataset without a previous export runs FULL. */
  mode: ExportMode;
  /** Start of the CHANGES window (exclusive); null for FULL. */
  since: number | null;
  notes: string[];
}

declare module '../jobs/job-types.js' {
  interface JobKindTypes {
    EXPORT: { input: ExportJobInput; progress: ExportProgress; result: ExportJobResult };
  }
}

export type ExportJob = JobOf<'EXPORT'>;

/**
 * What checking a request and planning an export need to know of the sandbox, read from
 * whichever database holds it: SQLite in one process (`sqliteFacts`), asking as the rules go,
 * or PostgreSQL on a cluster (cluster/pg-export-reads.ts), read at once beforehand. The rules
 * themselves live once, here.
 */
export interface ExportFacts {
  audiences(ids: readonly number[]): Facts<Map<number, Pick<Audience, 'name' | 'definitionId' | 'lifecycleState'>>>;
  /** The attribute columns of `fields` (all when null); BAD_USER_INPUT for an unknown path. */
  columns(fields: readonly string[] | null): Facts<AttributeColumn[]>;
  datasetById(id: number): Facts<Dataset | undefined>;
  datasetByName(name: string): Facts<Dataset | undefined>;
}

/** A fact as a reader gives it: at once (read beforehand) or when the store answers. */
type Facts<T> = T | Promise<T>;

export function exportFacts(conn: Store, sandboxId: number): ExportFacts {
  return {
    audiences: (ids) => audiencesByIds(conn, sandboxId, ids),
    columns: (fields) => attributeColumns(conn, sandboxId, fields),
    datasetById: async (id) => (await datasetsByIds(conn, sandboxId, [id])).get(id),
    datasetByName: (name) => datasetByName(conn, sandboxId, name),
  };
}

async function requiredDataset(facts: ExportFacts, id: number): Promise<Dataset> {
  const found = await facts.datasetById(id);
  if (!found) {
    const gid = encodeGlobalId('Dataset', id);
    throw notFound(`No Dataset with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

export interface ResolvedExportRequest {
  input: Omit<ExportJobInput, 'datasetId'>;
  /** With evaluateFirst: the definitions of the audiences that a segment job evaluates first. */
  definitionIds: number[];
  /** The dataset named, or undefined when `datasetName` names a dataset to create. */
  dataset: Dataset | undefined;
  datasetName: string | null;
}

/** Checks a request against the sandbox as it is now and normalizes it; creates nothing. */
export async function resolveExportRequest(
  facts: ExportFacts,
  request: ExportJobRequest,
): Promise<ResolvedExportRequest> {
  if (!request.audiences || request.audiences.length === 0) {
    throw badInput('Give at least one audience to export', 'input.audiences');
  }
  const ids = request.audiences.map((a) => a.audienceId);
  if (new Set(ids).size !== ids.length) throw badInput('An audience is listed twice', 'input.audiences');
  const found = await facts.audiences(ids);
  const audiences = request.audiences.map((a, i) => {
    if (!found.has(a.audienceId)) {
      const gid = encodeGlobalId('Audience', a.audienceId);
      throw notFound(`No Audience with id "${gid}" in this sandbox (input.audiences.${i})`, gid);
    }
    const statuses = a.statuses?.length ? [...new Set(a.statuses)] : [...CURRENT_STATUSES];
    for (const s of statuses) {
      if (!MEMBERSHIP_STATUSES.includes(s)) throw badInput(`Unknown status ${s}`, `input.audiences.${i}.statuses`);
    }
    return { audienceId: a.audienceId, statuses };
  });
  const fields = request.fields == null ? null : [...new Set(request.fields)];
  if (fields) await facts.columns(fields);
  const { destination } = request;
  if (!EXPORT_FORMATS.includes(destination.format)) {
    throw badInput(`Unknown format ${destination.format}`, 'input.destination.format');
  }
  const hasId = destination.datasetId != null;
  const hasName = destination.datasetName != null;
  if (hasId === hasName) {
    throw badInput('Give either destination.datasetId or destination.datasetName', 'input.destination');
  }
  let dataset: Dataset | undefined;
  let datasetName: string | null = null;
  if (hasId) {
    dataset = await requiredDataset(facts, destination.datasetId!);
  } else {
    datasetName = validDatasetName(destination.datasetName!, 'input.destination.datasetName');
    dataset = await facts.datasetByName(datasetName);
  }
  if (dataset && dataset.format !== destination.format) {
    throw badInput(
      `Dataset "${dataset.name}" holds ${dataset.format} files; export to it as ${dataset.format} or into another dataset`,
      'input.destination.format',
    );
  }
  const mode = request.mode ?? 'FULL';
  if (!EXPORT_MODES.includes(mode)) throw badInput(`Unknown mode ${mode}`, 'input.mode');
  if (request.changesSince != null && mode !== 'CHANGES') {
    throw badInput('changesSince applies to mode CHANGES only', 'input.changesSince');
  }
  const evaluateFirst = Boolean(request.evaluateFirst);
  // External and manual audiences have no definition, INACTIVE and ARCHIVED ones are not
  // evaluated: both are exported as stored.
  const definitionIds = evaluateFirst
    ? audiences.flatMap((a) => {
        const audience = found.get(a.audienceId)!;
        return audience.definitionId != null && isEvaluated(audience.lifecycleState) ? [audience.definitionId] : [];
      })
    : [];
  if (evaluateFirst && definitionIds.length === 0) {
    throw badInput(
      'evaluateFirst needs at least one audience with a segment definition in DRAFT or PUBLISHED; these audiences are exported as stored, so leave evaluateFirst out',
      'input.evaluateFirst',
    );
  }
  if (evaluateFirst && request.at != null && request.at > Date.now()) {
    throw badInput(
      'evaluateFirst evaluates the audiences at the export instant, which cannot be in the future; leave `at` out or give a past instant',
      'input.at',
    );
  }
  return {
    dataset,
    datasetName,
    definitionIds,
    input: {
      audiences,
      fields,
      fromIngestTimestamp: request.fromIngestTimestamp ?? null,
      emptyAudienceFilter: Boolean(request.emptyAudienceFilter),
      mode,
      changesSince: request.changesSince ?? null,
      format: destination.format,
      audiencePerFile: Boolean(destination.audiencePerFile),
      evaluateFirst,
      at: request.at ?? null,
    },
  };
}

/** Throws BAD_USER_INPUT / NOT_FOUND exactly as createExportJob would, without queuing anything. */
export async function validateExportRequest(conn: Store, sandboxId: number, request: ExportJobRequest): Promise<void> {
  await resolveExportRequest(exportFacts(conn, sandboxId), request);
}

/**
 * Validates and queues an export job, waking the runner. A `datasetName` that no dataset has
 * yet creates the dataset in the same transaction as the job. With `evaluateFirst` a segment
 * job over the audiences' definitions is queued in the same transaction to run first, and both
 * are pinned to one instant (the `at` asked for, else now): the export waits for it, fails if
 * it does not succeed, and cancelling the export cancels it.
 */
export function createExportJob(
  app: { conn: Store; jobs: JobQueue },
  sandboxId: number,
  request: ExportJobRequest,
  options: NewJobOptions = {},
): Promise<ExportJob> {
  return app.jobs.enqueue(
    app.conn,
    sandboxId,
    'EXPORT',
    async (chain, tx) => {
      const { input, dataset, datasetName, definitionIds } = await resolveExportRequest(
        exportFacts(tx, sandboxId),
        request,
      );
      const target = dataset ?? (await insertDataset(tx, sandboxId, datasetName!, input.format));
      if (!input.evaluateFirst) return { ...input, datasetId: target.id };
      const at = input.at ?? options.now ?? Date.now();
      await chain.first('SEGMENT', await segmentJobInput(tx, sandboxId, definitionIds, at));
      return { ...input, at, datasetId: target.id };
    },
    options,
  );
}

/** File names of one export: its job id keeps exports of one dataset apart. */
export function exportFileName(jobId: number, format: ExportFormat, audienceId: number | null): string {
  const ext = format === 'NDJSON' ? 'ndjson' : format === 'CSV' ? 'csv' : 'parquet';
  return audienceId == null ? `export-${jobId}.${ext}` : `export-${jobId}-audience-${audienceId}.${ext}`;
}

/** Removes what an earlier, unfinished attempt of this job left on disk (re-run after a crash). */
export function removeUnfinishedFiles(dir: string, jobId: number): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (
      name.startsWith(`.tmp-${jobId}-`) ||
      name.startsWith(`export-${jobId}.`) ||
      name.startsWith(`export-${jobId}-`) ||
      name === recordsFileName(jobId)
    )
      rmSync(`${dir}/${name}`, { force: true });
  }
}

/**
 * What an export job writes, fixed when it starts: the audiences still there, the columns, and
 * FULL or CHANGES since the dataset's last export (the first export of a dataset is always full).
 */
export async function exportPlanOf(
  facts: ExportFacts,
  job: Pick<ExportJob, 'id' | 'sandboxId' | 'input'>,
  now: number,
  dataDir: string,
): Promise<ExportPlan> {
  const input = job.input;
  const dataset = await requiredDataset(facts, input.datasetId);
  const notes: string[] = [];
  const found = await facts.audiences(input.audiences.map((a) => a.audienceId));
  const audiences = input.audiences.filter((a) => {
    if (found.has(a.audienceId)) return true;
    notes.push(`Audience ${encodeGlobalId('Audience', a.audienceId)} was deleted before the export ran; skipped`);
    return false;
  });
  if (input.evaluateFirst) {
    for (const a of audiences) {
      const audience = found.get(a.audienceId)!;
      if (audience.definitionId == null || !isEvaluated(audience.lifecycleState)) {
        notes.push(`"${audience.name}" has no definition the segment job evaluated; exported as stored`);
      }
    }
  }
  // The first export of a dataset is always full: there is nothing downstream to apply changes to.
  const changes = input.mode === 'CHANGES' && dataset.currentJobId != null;
  const since = changes ? (input.changesSince ?? dataset.lastExportAt) : null;
  return {
    jobId: job.id,
    sandboxId: job.sandboxId,
    datasetId: dataset.id,
    dir: datasetDir(dataDir, job.sandboxId, dataset.id),
    now,
    format: input.format,
    mode: changes ? 'CHANGES' : 'FULL',
    since,
    audiences: audiences.map((a) => ({ ...a, globalId: encodeGlobalId('Audience', a.audienceId) })),
    columns: await facts.columns(input.fields),
    allFields: input.fields == null,
    fromIngestTimestamp: input.fromIngestTimestamp,
    emptyAudienceFilter: input.emptyAudienceFilter,
    audiencePerFile: input.audiencePerFile,
    notes,
  };
}

export const exportJobKind = defineJobKind({
  kind: 'EXPORT',
  task: new URL('./export-task.ts', import.meta.url),
  timeoutMs: 10 * 60_000,
  plan: (job, now, { conn, dataDir }) => exportPlanOf(exportFacts(conn, job.sandboxId), job, now, dataDir),
});
