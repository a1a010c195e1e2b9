/**
 * The rows of an export as `Dataset.records` pages them, read from files rather than a table:
 * each row is one NDJSON line (the export's own NDJSON files, or the `records-<job>.ndjson`
 * file a CSV or Parquet export writes beside its files), and a few marks — where every 1,000th
 * row and the first row of every file start — let a page be read from near its first row.
 * Staging every row in a table doubled what an export wrote; the marks are a few hundred rows.
 */
import { closeSync, openSync, readdirSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../../db/index.js';
import { preparedOn, statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';

/** A mark every this many rows: a page reads at most this many lines before its first row. */
export const MARK_EVERY = 1000;

/** Where a row's line starts: row number (0-based, across the export's files in order), file, byte offset. */
export interface RecordMark {
  row: number;
  file: string;
  offset: number;
}

const MARK = '"row", file, "offset"';

const q = statements('record-marks', {
  /** A dataset's marks go when its next export's marks come (and with the dataset). */
  deleteOfDataset: {
    sqlite: 'DELETE FROM dataset_record_marks WHERE dataset_id = ?',
    postgres: 'DELETE FROM dataset_record_marks WHERE dataset_id = $1',
  },
  /** One export's marks, given as a JSON array of `[row, file, offset]`. */
  insertAll: {
    sqlite: `INSERT INTO dataset_record_marks (dataset_id, job_id, ${MARK})
      SELECT ?, ?, value ->> '$[0]', value ->> '$[1]', value ->> '$[2]' FROM json_each(?)`,
    postgres: `INSERT INTO dataset_record_marks (dataset_id, job_id, ${MARK})
      SELECT $1, $2, CAST(m ->> 0 AS bigint), m ->> 1, CAST(m ->> 2 AS bigint)
      FROM jsonb_array_elements(CAST($3 AS jsonb)) AS m`,
  },
  /** The last mark of an export at or before a row. */
  atOrBefore: {
    sqlite: `SELECT ${MARK} FROM dataset_record_marks WHERE job_id = ? AND "row" <= ? ORDER BY "row" DESC LIMIT 1`,
    postgres: `SELECT ${MARK} FROM dataset_record_marks WHERE job_id = $1 AND "row" <= $2 ORDER BY "row" DESC LIMIT 1`,
  },
  /** The first mark of an export at or after a row in another file: where the next file starts. */
  nextFile: {
    sqlite: `SELECT ${MARK} FROM dataset_record_marks WHERE job_id = ? AND "row" >= ? AND file <> ?
      ORDER BY "row" LIMIT 1`,
    postgres: `SELECT ${MARK} FROM dataset_record_marks WHERE job_id = $1 AND "row" >= $2 AND file <> $3
      ORDER BY "row" LIMIT 1`,
  },
});

/** The file of a CSV or Parquet export's rows as NDJSON lines (NDJSON exports page their own files). */
export function recordsFileName(jobId: number): string {
  return `records-${jobId}.ndjson`;
}

/** Collects an export's marks as it writes its rows. */
export class RecordMarks {
  readonly marks: RecordMark[] = [];
  private lastFile: string | undefined;

  /** Whether row `row`, written to `file`, needs a mark (then give its offset to `add`). */
  due(row: number, file: string): boolean {
    return row % MARK_EVERY === 0 || file !== this.lastFile;
  }

  add(row: number, file: string, offset: number): void {
    this.marks.push({ row, file, offset });
    this.lastFile = file;
  }

  /**
   * Stores the marks as the dataset's and drops older exports' marks. Synchronous: it runs in
   * the export worker's finishing transaction, on its own connection.
   */
  save(conn: Connection, datasetId: number, jobId: number): void {
    preparedOn(conn.sqlite, q.deleteOfDataset).run(datasetId);
    if (this.marks.length === 0) return;
    const rows = JSON.stringify(this.marks.map((m) => [m.row, m.file, m.offset]));
    preparedOn(conn.sqlite, q.insertAll).run(datasetId, jobId, rows);
  }
}

/** Drops a dataset's marks (the dataset is being deleted), inside the caller's unit. */
export async function deleteRecordMarks(conn: Store, datasetId: number): Promise<void> {
  await conn.run(q.deleteOfDataset, [datasetId]);
}

/** Removes the records files of a dataset's exports other than `keepJobId` (replaced ones, or a crash's leftovers). */
export function removeOtherRecordFiles(dir: string, keepJobId: number): void {
  const keep = recordsFileName(keepJobId);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (/^records-\d+\.ndjson$/.test(name) && name !== keep) rmSync(join(dir, name), { force: true });
  }
}

const CHUNK = 1 << 16;

/**
 * Rows `start` to `start + count - 1` (fewer at the end) of an export, as their JSON lines:
 * from the last mark at or before `start`, skipping the lines before it, and on into the next
 * file at the mark that starts it.
 */
export async function readRecordLines(
  conn: Store,
  dir: string,
  jobId: number,
  start: number,
  count: number,
): Promise<string[]> {
  if (count <= 0) return [];
  let mark = await conn.get<RecordMark>(q.atOrBefore, [jobId, start]);
  const out: string[] = [];
  while (mark && out.length < count) {
    const row = readFrom(join(dir, mark.file), mark.offset, mark.row, start, count, out);
    mark = await conn.get<RecordMark>(q.nextFile, [jobId, row, mark.file]);
  }
  return out;
}

/** Reads lines of one file from `offset` (row `row`) until `out` holds `count` rows from `start`; returns the row after its last line. */
function readFrom(path: string, offset: number, row: number, start: number, count: number, out: string[]): number {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let position = offset;
    let rest = Buffer.alloc(0);
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, position);
      if (n === 0) return row;
      position += n;
      let data = rest.length ? Buffer.concat([rest, buf.subarray(0, n)]) : buf.subarray(0, n);
      let from = 0;
      for (let nl = data.indexOf(10, from); nl !== -1; nl = data.indexOf(10, from)) {
        if (row >= start) out.push(data.toString('utf8', from, nl));
        row++;
        from = nl + 1;
        if (out.length >= count) return row;
      }
      // Copied: `buf` is read into again.
      data = data.subarray(from);
      rest = Buffer.from(data);
    }
  } finally {
    closeSync(fd);
  }
}
