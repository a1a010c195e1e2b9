import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { and, desc, eq, gt, inArray, lt, sql } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { datasetFiles, datasetRecordMarks, datasets, jobs } from '../../db/schema.js';
import { writeUnit } from '../../db/unit.js';
import { badInput, conflict, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { countRows, encodeCursor, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
import { readRecordLines } from './record-index.js';

export const EXPORT_FORMATS = ['NDJSON', 'CSV', 'PARQUET'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface Dataset {
  id: number;
  sandboxId: number;
  name: string;
  format: ExportFormat;
  /** The last successful export (its rows are the dataset's records); null before the first. */
  currentJobId: number | null;
  lastExportAt: number | null;
  createdAt: number;
}

export interface DatasetFile {
  datasetId: number;
  name: string;
  jobId: number;
  rows: number;
  bytes: number;
  sha256: string;
  createdAt: number;
}

/** One exported row as the API pages it. */
export interface DatasetRecord {
  /** Its row number in the export (0-based). */
  id: number;
  record: Record<string, unknown>;
}

const MAX_NAME = 200;

type DatasetRow = typeof datasets.$inferSelect;
const toDataset = (row: DatasetRow): Dataset => ({ ...row, format: row.format as ExportFormat });

/** Where a dataset's files live: its own folder under the data directory. */
export function datasetDir(dataDir: string, sandboxId: number, datasetId: number): string {
  return join(dataDir, 'exports', String(sandboxId), String(datasetId));
}

export async function datasetsByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Dataset>> {
  const out = new Map<number, Dataset>();
  if (ids.length === 0) return out;
  for (const row of conn.db
    .select()
    .from(datasets)
    .where(and(eq(datasets.sandboxId, sandboxId), inArray(datasets.id, [...ids])))
    .all())
    out.set(row.id, toDataset(row));
  return out;
}

export async function requireDataset(conn: Connection, sandboxId: number, id: number): Promise<Dataset> {
  const found = (await datasetsByIds(conn, sandboxId, [id])).get(id);
  if (!found) {
    const gid = encodeGlobalId('Dataset', id);
    throw notFound(`No Dataset with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

export async function datasetByName(conn: Connection, sandboxId: number, name: string): Promise<Dataset | undefined> {
  const row = conn.db
    .select()
    .from(datasets)
    .where(and(eq(datasets.sandboxId, sandboxId), eq(datasets.name, name)))
    .get();
  return row ? toDataset(row) : undefined;
}

export function validDatasetName(name: string, field: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > MAX_NAME) {
    throw badInput(`A dataset name has 1 to ${MAX_NAME} characters`, field);
  }
  return trimmed;
}

export async function insertDataset(
  conn: Connection,
  sandboxId: number,
  name: string,
  format: ExportFormat,
): Promise<Dataset> {
  const row = conn.db.insert(datasets).values({ sandboxId, name, format, createdAt: Date.now() }).returning().get();
  return toDataset(row);
}

/** Datasets of the sandbox, newest first. */
export async function listDatasets(
  conn: Connection,
  sandboxId: number,
  args: PageArgs,
): Promise<Page<Dataset> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const base = eq(datasets.sandboxId, sandboxId);
  const conditions = [base];
  if (query.after) conditions.push(lt(datasets.id, Number(query.after[0])));
  if (query.before) conditions.push(gt(datasets.id, Number(query.before[0])));
  const rows = conn.db
    .select()
    .from(datasets)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? desc(datasets.id) : datasets.id)
    .limit(query.fetch)
    .all();
  const page = toPage(rows, query, (r) => [r.id]);
  return { ...page, items: page.items.map(toDataset), totalCount: () => countRows(conn, datasets, base) };
}

/** The dataset's files, newest export first (the manifest describes the newest). */
export async function datasetFilesOf(conn: Connection, datasetId: number): Promise<DatasetFile[]> {
  return conn.db
    .select()
    .from(datasetFiles)
    .where(eq(datasetFiles.datasetId, datasetId))
    .orderBy(desc(datasetFiles.jobId), datasetFiles.name)
    .all();
}

export async function datasetFile(conn: Connection, datasetId: number, name: string): Promise<DatasetFile | undefined> {
  return conn.db
    .select()
    .from(datasetFiles)
    .where(and(eq(datasetFiles.datasetId, datasetId), eq(datasetFiles.name, name)))
    .get();
}

/**
 * The rows of the dataset's last successful export, in the order they were written, read from
 * its files (record-index.ts). A cursor names the export and the row, so a cursor given out
 * before a newer export replaced the rows is refused rather than continued in other rows.
 */
export async function datasetRecordsPage(
  conn: Connection,
  dataDir: string,
  dataset: Dataset,
  args: PageArgs,
): Promise<Page<DatasetRecord> & { totalCount: () => number }> {
  const query = pageQuery(args);
  const jobId = dataset.currentJobId;
  const total = jobId == null ? 0 : await exportedRows(conn, jobId);
  const rowOf = (key: (string | number | null)[] | undefined, field: string): number | undefined => {
    if (key === undefined) return undefined;
    const [job, row] = key;
    if (job !== jobId || typeof row !== 'number' || !Number.isInteger(row) || row < 0) {
      throw badInput(
        `"${field}" is a cursor of an earlier export of this dataset; page its records again from the start`,
        field,
      );
    }
    return row;
  };
  const after = rowOf(query.after, 'after');
  const before = rowOf(query.before, 'before');
  // Rows [lo, hi) are in the window the cursors leave; the page is its first or last `size`.
  const lo = after === undefined ? 0 : after + 1;
  const hi = Math.max(lo, Math.min(total, before ?? total));
  const start = query.direction === 'forward' ? lo : Math.max(lo, hi - query.size);
  const end = query.direction === 'forward' ? Math.min(hi, lo + query.size) : hi;
  const lines =
    jobId == null
      ? []
      : await readRecordLines(conn, datasetDir(dataDir, dataset.sandboxId, dataset.id), jobId, start, end - start);
  const items = lines.map((line, i) => ({ id: start + i, record: JSON.parse(line) as Record<string, unknown> }));
  return {
    items,
    cursors: items.map((r) => encodeCursor([jobId, r.id])),
    hasNextPage: query.direction === 'forward' ? end < hi : before !== undefined,
    hasPreviousPage: query.direction === 'backward' ? start > lo : after !== undefined,
    totalCount: () => total,
  };
}

/**
 * Rows an export wrote, from its result; none when it has no marks (an export made before rows
 * were paged from files: its rows page again after the dataset's next export).
 */
async function exportedRows(conn: Connection, jobId: number): Promise<number> {
  const n = conn.sqlite
    .prepare(
      `SELECT json_extract(result, '$.metrics.totalExportedProfileCounter') FROM jobs
       WHERE id = ? AND EXISTS (SELECT 1 FROM dataset_record_marks WHERE job_id = jobs.id)`,
    )
    .pluck()
    .get(jobId);
  return typeof n === 'number' ? n : 0;
}

/** Export jobs that will still write into a dataset (QUEUED, PROCESSING or CANCELLING). */
export async function activeExportsInto(conn: Connection, sandboxId: number, datasetId: number): Promise<number[]> {
  return conn.db
    .select({ id: jobs.id })
    .from(jobs)
    .where(
      and(
        eq(jobs.sandboxId, sandboxId),
        eq(jobs.kind, 'EXPORT'),
        inArray(jobs.status, ['QUEUED', 'PROCESSING', 'CANCELLING']),
        sql`json_extract(${jobs.input}, '$.datasetId') = ${datasetId}`,
      ),
    )
    .all()
    .map((r) => r.id);
}

/**
 * Deletes a dataset, its records and its files; CONFLICT while an export still writes into it.
 * The rows go in one transaction; the folder is removed after it commits.
 */
export async function deleteDataset(conn: Connection, dataDir: string, sandboxId: number, id: number): Promise<number> {
  await writeUnit(conn, async (tx) => {
    await requireDataset(tx, sandboxId, id);
    const active = await activeExportsInto(tx, sandboxId, id);
    if (active.length > 0) {
      throw conflict('An export into this dataset is queued or running; cancel it or wait for it to end', {
        jobs: active.map((j) => encodeGlobalId('ExportJob', j)),
      });
    }
    tx.db.delete(datasetRecordMarks).where(eq(datasetRecordMarks.datasetId, id)).run();
    tx.db.delete(datasetFiles).where(eq(datasetFiles.datasetId, id)).run();
    tx.db.delete(datasets).where(eq(datasets.id, id)).run();
  });
  rmSync(datasetDir(dataDir, sandboxId, id), { recursive: true, force: true });
  return id;
}
