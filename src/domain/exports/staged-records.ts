import { cacheKey } from '../../db/connection-cache.js';
import { type Connection, openDatabase } from '../../db/index.js';

const BATCH = 10_000;

const STAGING = cacheKey<Connection>('export staging connection');

/**
 * Writes an export's rows into `dataset_records` under its job id while the export reads from
 * its snapshot: on a second connection (the reading one holds a read transaction), in
 * transactions of 10,000 rows, so memory stays flat and the writer lock is held briefly. The
 * rows count only once the finishing transaction makes the job the dataset's current one.
 */
export class StagedRecords {
  private readonly staging: Connection;
  private batch: string[] = [];
  private readonly insert;

  constructor(
    conn: Connection,
    private readonly datasetId: number,
    private readonly jobId: number,
  ) {
    this.staging = conn.cache.get(STAGING, () => {
      const staging = openDatabase(conn.sqlite.name, { migrate: false });
      // It only appends: a small page cache keeps the export's memory flat however many rows it writes.
      staging.sqlite.pragma('cache_size = -8192');
      staging.sqlite.pragma('mmap_size = 0');
      return staging;
    });
    this.insert = this.staging.sqlite.prepare(
      'INSERT INTO dataset_records (dataset_id, job_id, record) VALUES (?, ?, ?)',
    );
  }

  /** Drops what an earlier attempt of this job staged (a re-run after a crash starts clean). */
  discard(): void {
    discardJobRecords(this.staging, this.jobId);
  }

  add(record: string): void {
    this.batch.push(record);
    if (this.batch.length >= BATCH) this.flush();
  }

  flush(): void {
    if (this.batch.length === 0) return;
    const rows = this.batch;
    this.batch = [];
    this.staging.sqlite
      .transaction(() => {
        for (const r of rows) this.insert.run(this.datasetId, this.jobId, r);
      })
      .immediate();
  }
}

/** Deletes a job's records in short transactions. */
export function discardJobRecords(conn: Connection, jobId: number, max = Number.POSITIVE_INFINITY): number {
  const del = conn.sqlite.prepare(
    'DELETE FROM dataset_records WHERE id IN (SELECT id FROM dataset_records WHERE job_id = ? LIMIT 10000)',
  );
  let deleted = 0;
  while (deleted < max) {
    const n = conn.sqlite.transaction(() => del.run(jobId).changes).immediate();
    deleted += n;
    if (n === 0) break;
  }
  return deleted;
}

/**
 * Housekeeping: records of exports that are no longer any dataset's current one and no longer
 * running (replaced by a newer export, failed, cancelled, or of a deleted dataset). At most
 * 100,000 rows per call, so a sweep never holds the main thread long.
 */
export function deleteStaleRecords(conn: Connection): number {
  const stale = conn.sqlite
    .prepare(
      `SELECT DISTINCT r.job_id FROM dataset_records r
       WHERE r.job_id NOT IN (SELECT current_job_id FROM datasets WHERE current_job_id IS NOT NULL)
         AND r.job_id NOT IN (SELECT id FROM jobs WHERE kind = 'EXPORT' AND status IN ('QUEUED', 'PROCESSING', 'CANCELLING'))`,
    )
    .pluck()
    .all() as number[];
  let deleted = 0;
  for (const jobId of stale) {
    deleted += discardJobRecords(conn, jobId, 100_000 - deleted);
    if (deleted >= 100_000) break;
  }
  return deleted;
}
