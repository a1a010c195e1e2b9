/**
 * The ingestion kind's task, run on its worker thread: reads the staged list in 1 MiB chunks,
 * checks every row, keeps the good ones in a temp table of its own connection (invisible to
 * everyone else, and gone after a crash, when the run starts again from the file), and in
 * `finish` writes the list, the memberships and the errors in the transaction that ends the run.
 */

import { closeSync, existsSync, openSync, readSync, rmSync } from 'node:fs';
import type { Connection } from '../../db/index.js';
import { Cancelled } from '../jobs/cancelled.js';
import { JobFailure } from '../jobs/job-failure.js';
import type { JobTask, TaskContext } from '../jobs/task.js';
import { CURRENT_STATUSES_SQL, statusSql } from '../membership-statuses.js';
import type { ExternalAudienceField } from './external-audiences.js';
import type { IngestionCounts, IngestionPlan } from './ingestion-run.js';
import { type ListRecord, type RecordSink, recordReader } from './list-records.js';
import { csvColumns, type ListShape, rowFromCsv, rowFromObject } from './list-rows.js';

// Chunks under V8's large-object size: the text decoded from each dies young, so the heap stays
// small however large the file is.
const CHUNK_BYTES = 64 * 1024;
/** Chunks per transaction of the temp-table writes. */
const CHUNKS_PER_COMMIT = 16;

const ingestionTask: JobTask<'INGESTION', IngestionPlan> = (conn, plan, ctx) => {
  runIngestion(conn, plan, ctx);
};
export default ingestionTask;

/** Reads the plan's file into the external audience; the whole run, as the worker (or a benchmark) calls it. */
export function runIngestion(conn: Connection, plan: IngestionPlan, ctx: TaskContext<'INGESTION'>): void {
  if (!existsSync(plan.upload)) {
    throw new Error(UPLOAD_GONE);
  }
  const { sqlite } = conn;
  // A list can be a gigabyte: its staging goes to temporary files, and this connection's caches
  // stay small (the server's defaults suit evaluation, which rereads the same pages; a run
  // writes each page once), so the run's memory does not grow with the file.
  const saved = {
    cache: sqlite.pragma('cache_size', { simple: true }),
    mmap: sqlite.pragma('mmap_size', { simple: true }),
    temp: sqlite.pragma('temp_store', { simple: true }),
  };
  sqlite.pragma('temp_store = FILE');
  sqlite.pragma('cache_size = -4096');
  sqlite.pragma('temp.cache_size = -4096');
  sqlite.pragma('mmap_size = 0');
  sqlite.exec(
    `DROP TABLE IF EXISTS temp.ingest_rows; DROP TABLE IF EXISTS temp.ingest_errors; DROP TABLE IF EXISTS temp.ingest_match;
     CREATE TEMP TABLE ingest_rows (value TEXT NOT NULL, line INTEGER NOT NULL, payload TEXT NOT NULL);
     CREATE TEMP TABLE ingest_errors (line INTEGER PRIMARY KEY, message TEXT NOT NULL);`,
  );
  try {
    const counts = readList(conn, plan, ctx);
    const unusable = nothingUsable(counts);
    if (unusable !== undefined) {
      saveErrorsAlone(conn, plan.jobId);
      throw new JobFailure(unusable, counts);
    }
    if (ctx.cancelled()) throw new Cancelled();
    ctx.finish(() => {
      const matched = writeRun(conn, plan);
      return { result: { ...counts, recordsMatched: matched }, units: plan.bytes };
    });
    rmSync(plan.upload, { force: true });
  } finally {
    sqlite.exec(
      'DROP TABLE IF EXISTS temp.ingest_rows; DROP TABLE IF EXISTS temp.ingest_errors; DROP TABLE IF EXISTS temp.ingest_match',
    );
    sqlite.pragma(`temp_store = ${Number(saved.temp)}`);
    sqlite.pragma(`cache_size = ${Number(saved.cache)}`);
    sqlite.pragma(`mmap_size = ${Number(saved.mmap)}`);
  }
}

/** Where the checked rows of a list go: each good row (its identity, line and payload as JSON text), each bad one. */
export interface ListOutput {
  row(identity: string, line: number, payload: string): void;
  error(line: number, message: string): void;
}

/**
 * The rules of a list's records, the same on SQLite (this task) and on a cluster node
 * (cluster/cluster-ingestion-run.ts), which differ only in where the rows go: a CSV's first
 * record is its header (a header that does not fit fails the run), every other record is read,
 * checked against the audience's fields and counted, and goes to `out` as a row or an error.
 */
export function listSink(plan: IngestionPlan, counts: IngestionCounts, out: ListOutput): RecordSink {
  const shape: ListShape = {
    fields: plan.fields,
    identityField: plan.identityField,
    identityNamespace: plan.identityNamespace,
  };
  let columns: ExternalAudienceField[] | undefined;
  const fail = (line: number, message: string) => {
    counts.recordsFailed++;
    out.error(line, message);
  };
  return (record: ListRecord) => {
    if (plan.format === 'CSV' && columns === undefined) {
      const header = record.error === undefined && 'values' in record ? record.values : undefined;
      if (!header) throw new Error(`The CSV header on line ${record.line} is unreadable: ${record.error ?? 'not CSV'}`);
      const found = csvColumns(
        header.map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, '') : h)),
        shape,
      );
      if (typeof found === 'string') throw new Error(found);
      columns = found;
      return;
    }
    counts.recordsRead++;
    if (record.error !== undefined) return fail(record.line, record.error);
    const row =
      'values' in record ? rowFromCsv(record.values, columns ?? [], shape) : rowFromObject(record.object, shape);
    if (!row.ok) return fail(record.line, row.message);
    out.row(row.identity, record.line, JSON.stringify(row.payload));
    counts.recordsImported++;
  };
}

/** Counts before the first record. */
export const noCounts = (): IngestionCounts => ({
  recordsRead: 0,
  recordsImported: 0,
  recordsMatched: 0,
  recordsFailed: 0,
});

/** Why a run that imported nothing fails (its errors are kept); undefined when it imported rows. */
export function nothingUsable(counts: IngestionCounts): string | undefined {
  if (counts.recordsImported > 0) return undefined;
  return counts.recordsRead === 0
    ? 'The file has no rows'
    : `Nothing usable: all ${counts.recordsFailed} rows failed (see the run's errors)`;
}

/** The message of a run whose staged file is gone. */
export const UPLOAD_GONE =
  'The uploaded file of this run is gone (removed from the data directory); start the run again';

function readList(conn: Connection, plan: IngestionPlan, ctx: TaskContext<'INGESTION'>): IngestionCounts {
  const { sqlite } = conn;
  // Appended in file order without a key (the cheapest insert); writeRun lets a later row of the same identity win.
  const insertRow = sqlite.prepare('INSERT INTO temp.ingest_rows (value, line, payload) VALUES (?, ?, ?)');
  const insertError = sqlite.prepare('INSERT OR REPLACE INTO temp.ingest_errors (line, message) VALUES (?, ?)');
  const counts = noCounts();
  const sink = listSink(plan, counts, {
    row: (identity, line, payload) => insertRow.run(identity, line, payload),
    error: (line, message) => insertError.run(line, message),
  });
  const reader = recordReader(plan.format, sink);
  const fd = openSync(plan.upload, 'r');
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let done = 0;
  let lastReport = 0;
  try {
    for (let n = -1; n !== 0; ) {
      if (ctx.cancelled()) throw new Cancelled();
      // The temp tables are this connection's: a transaction here only batches the writes.
      sqlite.exec('BEGIN');
      try {
        for (let i = 0; i < CHUNKS_PER_COMMIT; i++) {
          n = readSync(fd, buffer, 0, CHUNK_BYTES, null);
          if (n === 0) {
            reader.end();
            break;
          }
          reader.push(buffer.subarray(0, n));
          done += n;
        }
        sqlite.exec('COMMIT');
      } catch (err) {
        sqlite.exec('ROLLBACK');
        throw err;
      }
      const now = Date.now();
      if (now - lastReport >= 100) {
        lastReport = now;
        ctx.progress({ done, total: plan.bytes, ...counts });
      }
    }
  } finally {
    closeSync(fd);
  }
  // No final report here: it would reach the runner while `finish` holds the write lock.
  return counts;
}

/** A run with nothing usable fails, but its errors stay readable (a re-run replaces them). */
function saveErrorsAlone(conn: Connection, jobId: number): void {
  // A write of the worker's own, outside `finish`: through the write gate too (db/write-gate.ts).
  conn.writeGate.runBlocking(() =>
    conn.sqlite
      .transaction(() => {
        conn.sqlite.prepare('DELETE FROM main.ingestion_errors WHERE job_id = ?').run(jobId);
        conn.sqlite
          .prepare(
            'INSERT INTO main.ingestion_errors (job_id, line, message) SELECT ?, line, message FROM temp.ingest_errors',
          )
          .run(jobId);
      })
      .immediate(),
  );
}

/**
 * Writes the run (inside its finishing transaction): the list, then the memberships as a segment
 * job moves them — matched profiles enter (REALIZED) or stay (EXISTING); with REPLACE, members
 * not in the list exit — each change with a history entry; returns how many rows matched a profile.
 */
function writeRun(conn: Connection, plan: IngestionPlan): number {
  const { sqlite } = conn;
  const { sandboxId, audienceId, now, jobId, identityNamespace } = plan;
  const cause = `job:${jobId}`;
  sqlite.prepare('DELETE FROM main.ingestion_errors WHERE job_id = ?').run(jobId);
  sqlite
    .prepare(
      'INSERT INTO main.ingestion_errors (job_id, line, message) SELECT ?, line, message FROM temp.ingest_errors',
    )
    .run(jobId);
  sqlite.exec(
    'CREATE TEMP TABLE ingest_match (profile_id INTEGER PRIMARY KEY, line INTEGER NOT NULL, payload TEXT NOT NULL)',
  );
  // Two rows naming the same profile (two identities of one person): the later line's values win.
  sqlite
    .prepare(
      `INSERT INTO temp.ingest_match (profile_id, line, payload)
       SELECT i.profile_id, r.line, r.payload FROM temp.ingest_rows r
       JOIN main.identities i ON i.sandbox_id = ? AND i.namespace = ? AND i.value = r.value WHERE true
       ON CONFLICT (profile_id) DO UPDATE SET line = excluded.line, payload = excluded.payload WHERE excluded.line > line`,
    )
    .run(sandboxId, identityNamespace);
  const matched = sqlite
    .prepare(
      `SELECT count(*) FROM temp.ingest_rows r
       WHERE EXISTS (SELECT 1 FROM main.identities i WHERE i.sandbox_id = ? AND i.namespace = ? AND i.value = r.value)`,
    )
    .pluck()
    .get(sandboxId, identityNamespace) as number;
  const history = `INSERT INTO main.membership_history (sandbox_id, profile_id, audience_id, at, from_status, to_status, cause)`;
  sqlite
    .prepare(
      `${history} SELECT ?, r.profile_id, ?, ?, m.status, ${statusSql('REALIZED')}, ? FROM temp.ingest_match r
       LEFT JOIN main.memberships m ON m.audience_id = ? AND m.profile_id = r.profile_id
       WHERE m.status IS NULL OR m.status = ${statusSql('EXITED')}`,
    )
    .run(sandboxId, audienceId, now, cause, audienceId);
  sqlite
    .prepare(
      `${history} SELECT ?, m.profile_id, m.audience_id, ?, ${statusSql('REALIZED')}, ${statusSql('EXISTING')}, ? FROM main.memberships m
       WHERE m.audience_id = ? AND m.status = ${statusSql('REALIZED')} AND m.profile_id IN (SELECT profile_id FROM temp.ingest_match)`,
    )
    .run(sandboxId, now, cause, audienceId);
  if (plan.mode === 'REPLACE') {
    sqlite
      .prepare(
        `${history} SELECT ?, m.profile_id, m.audience_id, ?, m.status, ${statusSql('EXITED')}, ? FROM main.memberships m
         WHERE m.audience_id = ? AND m.status IN ${CURRENT_STATUSES_SQL}
           AND m.profile_id NOT IN (SELECT profile_id FROM temp.ingest_match)`,
      )
      .run(sandboxId, now, cause, audienceId);
    sqlite
      .prepare(
        `UPDATE main.memberships SET status = ${statusSql('EXITED')}, exited_at = ?, last_evaluated_at = ?
         WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL}
           AND profile_id NOT IN (SELECT profile_id FROM temp.ingest_match)`,
      )
      .run(now, now, audienceId);
    sqlite
      .prepare(
        'DELETE FROM main.external_members WHERE audience_id = ? AND value NOT IN (SELECT value FROM temp.ingest_rows)',
      )
      .run(audienceId);
  }
  sqlite
    .prepare(
      `UPDATE main.memberships SET status = ${statusSql('EXISTING')}, last_evaluated_at = ?,
         payload = (SELECT r.payload FROM temp.ingest_match r WHERE r.profile_id = memberships.profile_id)
       WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL}
         AND profile_id IN (SELECT profile_id FROM temp.ingest_match)`,
    )
    .run(now, audienceId);
  sqlite
    .prepare(
      `INSERT INTO main.memberships (sandbox_id, audience_id, profile_id, status, qualified_at, last_evaluated_at, exited_at, payload)
       SELECT ?, ?, r.profile_id, ${statusSql('REALIZED')}, ?, ?, NULL, r.payload FROM temp.ingest_match r WHERE true
       ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = ${statusSql('REALIZED')}, qualified_at = excluded.qualified_at,
         last_evaluated_at = excluded.last_evaluated_at, exited_at = NULL, payload = excluded.payload
       WHERE memberships.status = ${statusSql('EXITED')}`,
    )
    .run(sandboxId, audienceId, now, now);
  // In key order (a sort is cheaper than inserting at random places in the index); of two rows with
  // the same identity the later one comes last and wins.
  sqlite
    .prepare(
      `INSERT INTO main.external_members (sandbox_id, audience_id, namespace, value, payload, imported_at)
       SELECT ?, ?, ?, value, payload, ? FROM temp.ingest_rows WHERE true ORDER BY value, rowid
       ON CONFLICT (audience_id, value) DO UPDATE SET payload = excluded.payload, imported_at = excluded.imported_at`,
    )
    .run(sandboxId, audienceId, identityNamespace, now);
  sqlite
    .prepare(
      `UPDATE main.audiences SET size = (SELECT count(*) FROM main.memberships WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL}),
       last_evaluated_at = ? WHERE id = ?`,
    )
    .run(audienceId, now, audienceId);
  return matched;
}
