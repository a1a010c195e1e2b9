import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { writeUnit } from '../../db/unit.js';
import { badInput, conflict, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { encodeCursor, integerBounds, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
import { deleteRecordMarks, readRecordLines } from './record-index.js';

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

type DatasetRow = Omit<Dataset, 'format'> & { format: string };
const toDataset = (row: DatasetRow): Dataset => ({ ...row, format: row.format as ExportFormat });

// Every column, as Drizzle's select() gave them.
const COLUMNS = `id, sandbox_id AS "sandboxId", name, format, current_job_id AS "currentJobId",
  last_export_at AS "lastExportAt", created_at AS "createdAt"`;
const FILE_COLUMNS = `dataset_id AS "datasetId", name, job_id AS "jobId", "rows", bytes, sha256,
  created_at AS "createdAt"`;

/** A page's bounds: ids below the first, above the second (paging.ts integerBounds). */
const PAGE = 'sandbox_id = ? AND id < ? AND id > ?';
const PAGE_PG = 'sandbox_id = $1 AND id < $2 AND id > $3';

const q = statements('datasets', {
  /**
   * The sandbox's datasets among the ids of the JSON array, by id. `+sandbox_id` and `ORDER BY id`:
   * see audiences' byIds (src/domain/audiences.ts).
   */
  byIds: {
    sqlite: `SELECT ${COLUMNS} FROM datasets
      WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${COLUMNS} FROM datasets
      WHERE sandbox_id = $1 AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY id`,
  },
  byName: {
    sqlite: `SELECT ${COLUMNS} FROM datasets WHERE sandbox_id = ? AND name = ?`,
    postgres: `SELECT ${COLUMNS} FROM datasets WHERE sandbox_id = $1 AND name = $2`,
  },
  insert: {
    sqlite: `INSERT INTO datasets (sandbox_id, name, format, created_at) VALUES (?, ?, ?, ?) RETURNING ${COLUMNS}`,
    postgres: `INSERT INTO datasets (sandbox_id, name, format, created_at) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
  },
  /** A page newest first (forward). */
  pageDown: {
    sqlite: `SELECT ${COLUMNS} FROM datasets WHERE ${PAGE} ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${COLUMNS} FROM datasets WHERE ${PAGE_PG} ORDER BY id DESC LIMIT $4`,
  },
  /** A page oldest first (backward). */
  pageUp: {
    sqlite: `SELECT ${COLUMNS} FROM datasets WHERE ${PAGE} ORDER BY id LIMIT ?`,
    postgres: `SELECT ${COLUMNS} FROM datasets WHERE ${PAGE_PG} ORDER BY id LIMIT $4`,
  },
  count: {
    sqlite: 'SELECT count(*) AS n FROM datasets WHERE sandbox_id = ?',
    postgres: 'SELECT count(*) AS n FROM datasets WHERE sandbox_id = $1',
  },
  /** Names in bytes on both (SQLite's binary collation). */
  files: {
    sqlite: `SELECT ${FILE_COLUMNS} FROM dataset_files WHERE dataset_id = ? ORDER BY job_id DESC, name`,
    postgres: `SELECT ${FILE_COLUMNS} FROM dataset_files WHERE dataset_id = $1 ORDER BY job_id DESC, name COLLATE "C"`,
  },
  file: {
    sqlite: `SELECT ${FILE_COLUMNS} FROM dataset_files WHERE dataset_id = ? AND name = ?`,
    postgres: `SELECT ${FILE_COLUMNS} FROM dataset_files WHERE dataset_id = $1 AND name = $2`,
  },
  /** The rows an export wrote, when it is a number and the export left marks; null otherwise. */
  exportedRows: {
    sqlite: `SELECT CASE WHEN json_type(result, '$.metrics.totalExportedProfileCounter') IN ('integer', 'real')
        THEN json_extract(result, '$.metrics.totalExportedProfileCounter') END AS n FROM jobs
      WHERE id = ? AND EXISTS (SELECT 1 FROM dataset_record_marks WHERE job_id = jobs.id)`,
    postgres: `SELECT CASE WHEN jsonb_typeof(result #> '{metrics,totalExportedProfileCounter}') = 'number'
        THEN CAST(result #>> '{metrics,totalExportedProfileCounter}' AS double precision) END AS n FROM jobs
      WHERE id = $1 AND EXISTS (SELECT 1 FROM dataset_record_marks WHERE job_id = jobs.id)`,
  },
  /** Export jobs of the sandbox into the dataset still queued or running. */
  activeExportsInto: {
    sqlite: `SELECT id FROM jobs WHERE sandbox_id = ? AND kind = 'EXPORT'
      AND status IN ('QUEUED', 'PROCESSING', 'CANCELLING') AND json_extract(input, '$.datasetId') = ?
      ORDER BY id`,
    postgres: `SELECT id FROM jobs WHERE sandbox_id = $1 AND kind = 'EXPORT'
      AND status IN ('QUEUED', 'PROCESSING', 'CANCELLING') AND input -> 'datasetId' = to_jsonb(CAST($2 AS bigint))
      ORDER BY id`,
  },
  deleteFiles: {
    sqlite: 'DELETE FROM dataset_files WHERE dataset_id = ?',
    postgres: 'DELETE FROM dataset_files WHERE dataset_id = $1',
  },
  delete: {
    sqlite: 'DELETE FROM datasets WHERE id = ?',
    postgres: 'DELETE FROM datasets WHERE id = $1',
  },
});

/** Where a dataset's files live: its own folder under the data directory. */
export function datasetDir(dataDir: string, sandboxId: number, datasetId: number): string {
  return join(dataDir, 'exports', String(sandboxId), String(datasetId));
}

export async function datasetsByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Dataset>> {
  const out = new Map<number, Dataset>();
  if (ids.length === 0) return out;
  for (const row of await conn.all<DatasetRow>(q.byIds, [sandboxId, JSON.stringify(ids)]))
    out.set(row.id, toDataset(row));
  return out;
}

export async function requireDataset(conn: Store, sandboxId: number, id: number): Promise<Dataset> {
  const found = (await datasetsByIds(conn, sandboxId, [id])).get(id);
  if (!found) {
    const gid = encodeGlobalId('Dataset', id);
    throw notFound(`No Dataset with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

export async function datasetByName(conn: Store, sandboxId: number, name: string): Promise<Dataset | undefined> {
  const row = await conn.get<DatasetRow>(q.byName, [sandboxId, name]);
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
  conn: Store,
  sandboxId: number,
  name: string,
  format: ExportFormat,
): Promise<Dataset> {
  const row = (await conn.get<DatasetRow>(q.insert, [sandboxId, name, format, Date.now()]))!;
  return toDataset(row);
}

/** Datasets of the sandbox, newest first. */
export async function listDatasets(
  conn: Store,
  sandboxId: number,
  args: PageArgs,
): Promise<Page<Dataset> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const { above, below } = integerBounds(query);
  const rows = await conn.all<DatasetRow>(query.direction === 'forward' ? q.pageDown : q.pageUp, [
    sandboxId,
    below,
    above,
    query.fetch,
  ]);
  const page = toPage(rows, query, (r) => [r.id]);
  return {
    ...page,
    items: page.items.map(toDataset),
    totalCount: async () => (await conn.get<{ n: number }>(q.count, [sandboxId]))!.n,
  };
}

/** The dataset's files, newest export first (the manifest describes the newest). */
export async function datasetFilesOf(conn: Store, datasetId: number): Promise<DatasetFile[]> {
  return conn.all<DatasetFile>(q.files, [datasetId]);
}

export async function datasetFile(conn: Store, datasetId: number, name: string): Promise<DatasetFile | undefined> {
  return conn.get<DatasetFile>(q.file, [datasetId, name]);
}

/**
 * The rows of the dataset's last successful export, in the order they were written, read from
 * its files (record-index.ts). A cursor names the export and the row, so a cursor given out
 * before a newer export replaced the rows is refused rather than continued in other rows.
 */
export async function datasetRecordsPage(
  conn: Store,
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
async function exportedRows(conn: Store, jobId: number): Promise<number> {
  const n = (await conn.get<{ n: unknown }>(q.exportedRows, [jobId]))?.n;
  return typeof n === 'number' ? n : 0;
}

/** Export jobs that will still write into a dataset (QUEUED, PROCESSING or CANCELLING). */
export async function activeExportsInto(conn: Store, sandboxId: number, datasetId: number): Promise<number[]> {
  return (await conn.all<{ id: number }>(q.activeExportsInto, [sandboxId, datasetId])).map((r) => r.id);
}

/**
 * Deletes a dataset, its records and its files; CONFLICT while an export still writes into it.
 * The rows go in one transaction; the folder is removed after it commits.
 */
export async function deleteDataset(conn: Store, dataDir: string, sandboxId: number, id: number): Promise<number> {
  await writeUnit(conn, async (tx) => {
    await requireDataset(tx, sandboxId, id);
    const active = await activeExportsInto(tx, sandboxId, id);
    if (active.length > 0) {
      throw conflict('An export into this dataset is queued or running; cancel it or wait for it to end', {
        jobs: active.map((j) => encodeGlobalId('ExportJob', j)),
      });
    }
    await deleteRecordMarks(tx, id);
    await tx.run(q.deleteFiles, [id]);
    await tx.run(q.delete, [id]);
  });
  rmSync(datasetDir(dataDir, sandboxId, id), { recursive: true, force: true });
  return id;
}
