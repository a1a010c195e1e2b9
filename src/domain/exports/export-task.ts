import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../../db/index.js';
import { encodeGlobalId } from '../ids.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask, TaskContext } from '../jobs/task.js';
import { statusSql } from '../membership-statuses.js';
import { setAt, valueAt } from './export-columns.js';
import type { ExportFileInfo, ExportJobResult } from './export-job.js';
import { exportFileName, removeUnfinishedFiles } from './export-job.js';
import type { ExportPlan } from './export-plan.js';
import { FileSink, publishFile } from './file-sink.js';
import { addNamespaceCounts } from './namespace-tally.js';
import { RecordMarks, recordsFileName, removeOtherRecordFiles } from './record-index.js';
import { createRowWriter, type ExportRow, ndjsonWriter, type RecordWriter, type RowWriter } from './row-writers.js';

/** The export kind's task, which the job worker runs. */
const exportTask: JobTask<'EXPORT', ExportPlan> = (conn, plan, ctx) => runExport(conn, plan, ctx);
export default exportTask;

interface SourceRow {
  pid: number;
  status: string;
  q: number | null;
  x: number | null;
  c: number | null;
  doc: string | null;
  ids: string;
}

interface OpenFile {
  name: string;
  audienceId: number | null;
  sink: FileSink;
  rows: number;
  /** The records file of a CSV or Parquet export: published with the files, not listed among them. */
  records?: boolean;
}

const IDENTITIES = `(SELECT json_group_array(json_object('namespace', i.namespace, 'id', i.value))
  FROM identities i WHERE i.profile_id = p.id)`;
/**
 * An instant (ms, an SQL expression) as JSON's ISO-8601 text, exactly as Date.toISOString writes
 * it, for years 0 to 9999 (null outside them and for null). From 1970 on, the date comes from
 * date() and the time of day from integer arithmetic: a fifth of the cost of strftime's %f, which
 * was an eighth of an export's SQL; before 1970 (where integer division rounds the other way)
 * strftime does it all.
 */
export const isoSql = (ms: string) =>
  `CASE WHEN ${ms} >= 0 THEN date(${ms} / 1000, 'unixepoch') || printf('T%02d:%02d:%02d.%03dZ', ${ms} / 3600000 % 24, ${ms} / 60000 % 60, ${ms} / 1000 % 60, ${ms} % 1000)
    ELSE strftime('%Y-%m-%dT%H:%M:%fZ', ${ms} / 1000.0, 'unixepoch') END`;

/**
 * A FULL export of whole profiles to NDJSON builds each line in SQL: the reader hands over one
 * finished string per row and JavaScript only copies it to the file. Same line as `toRow`.
 */
const lineOnly = (plan: ExportPlan) => plan.format === 'NDJSON' && plan.allFields && plan.mode === 'FULL';

/**
 * The attributes inside a SQL-built line: json_object takes a JSONB document (what profiles hold,
 * docs/storage.md) as JSON without rendering it to text and parsing that again, as json() would;
 * text JSON, which no writer stores, still goes through json().
 */
const ATTRIBUTES_JSON = "iif(typeof(p.attributes) = 'blob', p.attributes, json(p.attributes))";

/** The rows of one audience, in one statement read by a cursor (the caller holds the read snapshot). */
function rowQuery(plan: ExportPlan, count: boolean): string {
  const fresh = plan.fromIngestTimestamp != null ? ' AND p.updated_at >= @fromIngest' : '';
  if (plan.mode === 'CHANGES') {
    const select = count
      ? 'count(*)'
      : `h.profile_id AS pid, h.to_status AS status,
         CASE h.to_status WHEN ${statusSql('REALIZED')} THEN h.at END AS q, CASE h.to_status WHEN ${statusSql('EXITED')} THEN h.at END AS x,
         h.at AS c, json(p.attributes) AS doc, coalesce(${IDENTITIES}, '[]') AS ids`;
    // Every move in or out in the window, oldest first: what a downstream copy applies in order.
    return `SELECT ${select} FROM membership_history h LEFT JOIN profiles p ON p.id = h.profile_id
      WHERE h.audience_id = @audience AND h.to_status IN (${statusSql('REALIZED')}, ${statusSql('EXITED')}) AND h.at > @since AND h.at <= @now${fresh}
      ${count ? '' : 'ORDER BY h.id'}`;
  }
  const where = 'm.audience_id = @audience AND m.status IN (SELECT value FROM json_each(@statuses))';
  // Every membership has its profile (they are deleted together): counting needs no join unless it filters on the profile.
  if (count && !fresh) return `SELECT count(*) FROM memberships m WHERE ${where}`;
  const select = count
    ? 'count(*)'
    : lineOnly(plan)
      ? `json_object('audienceId', @gid, 'identities', ${IDENTITIES}, 'status', m.status,
           'qualifiedAt', ${isoSql('m.qualified_at')}, 'exitedAt', ${isoSql('m.exited_at')},
           'attributes', ${ATTRIBUTES_JSON}) AS line`
      : `m.profile_id AS pid, m.status AS status, m.qualified_at AS q, m.exited_at AS x, NULL AS c,
       json(p.attributes) AS doc, ${IDENTITIES} AS ids`;
  return `SELECT ${select} FROM memberships m JOIN profiles p ON p.id = m.profile_id
    WHERE ${where}${fresh}
    ${count ? '' : 'ORDER BY m.profile_id'}`;
}

/** The reading connection's page cache during an export, in KiB (negative: a size, not pages). */
const SCAN_CACHE_KIB = -8192;

const iso = (ms: number | null) => (ms == null ? 'null' : `"${new Date(ms).toISOString()}"`);

/**
 * Writes the plan's audiences into the dataset (docs/api.md "Exports and datasets"). All reads run
 * in one read transaction (a snapshot); each file is written under a temporary name and
 * fsynced, with marks of where its rows start (record-index.ts; a CSV or Parquet export also
 * writes its rows as NDJSON lines to a records file for them); `ctx.finish` then renames the
 * files, records them, the marks and the manifest, and makes the job the dataset's current
 * export, in one transaction with the job's SUCCEEDED state. A failure or cancel removes the
 * temporary files; a crash leaves them for the re-run, which removes them first.
 */
export function runExport(conn: Connection, plan: ExportPlan, ctx: TaskContext<'EXPORT'>): void {
  const started = performance.now();
  const { sqlite } = conn;
  mkdirSync(plan.dir, { recursive: true });
  removeUnfinishedFiles(plan.dir, plan.jobId);
  const marks = new RecordMarks();
  const changes = plan.mode === 'CHANGES';
  const open: OpenFile[] = [];
  const done: (OpenFile & { bytes: number; sha256: string })[] = [];
  // Rows per namespace, counted by the sinks of the NDJSON lines (the NDJSON files, or the records file).
  const namespaces: Record<string, number> = {};
  let written = 0;
  let lastReport = 0;
  const newFile = (
    audienceId: number | null,
    countNamespaces: boolean,
    name = exportFileName(plan.jobId, plan.format, audienceId),
  ): OpenFile => {
    const sink = new FileSink(join(plan.dir, `.tmp-${plan.jobId}-${name}`), { countNamespaces });
    const file = { name, audienceId, sink, rows: 0 };
    open.push(file);
    return file;
  };
  const closeFile = (file: OpenFile, records = false) => {
    open.splice(open.indexOf(file), 1);
    const { bytes, sha256, namespaceSets } = file.sink.finish();
    addNamespaceCounts(namespaces, namespaceSets);
    if (file.rows === 0 && plan.emptyAudienceFilter && !records) rmSync(file.sink.tempPath, { force: true });
    else done.push({ ...file, records, bytes, sha256 });
  };
  // One pass reads each page once: a big page cache and the memory map would only fill with
  // scanned pages, which count in the process's memory, growing with the export. Restored after.
  const cacheSize = sqlite.pragma('cache_size', { simple: true });
  const mmapSize = sqlite.pragma('mmap_size', { simple: true });
  sqlite.pragma(`cache_size = ${SCAN_CACHE_KIB}`);
  sqlite.pragma('mmap_size = 0');
  try {
    const lines = lineOnly(plan);
    let began = false;
    try {
      sqlite.exec('BEGIN');
      began = true;
      const params = (audience: ExportPlan['audiences'][number]) => ({
        audience: audience.audienceId,
        statuses: JSON.stringify(audience.statuses),
        ...(plan.fromIngestTimestamp != null ? { fromIngest: plan.fromIngestTimestamp } : {}),
        ...(changes ? { since: plan.since ?? 0, now: plan.now } : {}),
        ...(lines ? { gid: audience.globalId } : {}),
      });
      const counter = sqlite.prepare(rowQuery(plan, true)).pluck();
      const total = plan.audiences.reduce((n, a) => n + (counter.get(params(a)) as number), 0);
      ctx.progress({ done: 0, total });
      const reader = sqlite.prepare(rowQuery(plan, false));
      const afterRow = () => {
        written++;
        if (written % 1000 === 0) {
          if (ctx.cancelled()) throw new Cancelled();
          const now = Date.now();
          if (now - lastReport >= 50) {
            lastReport = now;
            ctx.progress({ done: written, total });
          }
        }
      };
      const ndjson = plan.format === 'NDJSON';
      const needValues = !ndjson;
      // NDJSON files are their own records; other formats write the lines to a records file too.
      const recordsFile = ndjson ? undefined : newFile(null, true, recordsFileName(plan.jobId));
      const recordsWriter = recordsFile && ndjsonWriter(recordsFile.sink);
      let combined: OpenFile | undefined;
      let writer: RowWriter | undefined;
      let records: { name: string; writer: RecordWriter } | undefined;
      const openWriter = (file: OpenFile) => {
        if (ndjson) {
          const w = ndjsonWriter(file.sink);
          records = { name: file.name, writer: w };
          return w;
        }
        records = { name: recordsFile!.name, writer: recordsWriter! };
        return createRowWriter(plan.format, file.sink, plan.columns, changes);
      };
      for (const audience of plan.audiences) {
        if (!combined || plan.audiencePerFile) {
          combined = newFile(plan.audiencePerFile ? audience.audienceId : null, ndjson);
          writer = openWriter(combined);
        }
        const file = combined;
        const out = records!;
        if (lines) {
          for (const line of reader.pluck().iterate(params(audience)) as IterableIterator<string>) {
            if (marks.due(written, out.name)) marks.add(written, out.name, out.writer.position());
            file.sink.writeLine(line);
            file.rows++;
            afterRow();
          }
        } else {
          for (const src of reader.iterate(params(audience)) as IterableIterator<SourceRow>) {
            const row = toRow(plan, audience.globalId, src, needValues);
            if (marks.due(written, out.name)) marks.add(written, out.name, out.writer.position());
            writer!.write(row);
            recordsWriter?.write(row);
            file.rows++;
            afterRow();
          }
        }
        if (plan.audiencePerFile) {
          writer!.end();
          closeFile(file);
        }
      }
      if (!plan.audiencePerFile) {
        if (!combined) {
          combined = newFile(null, ndjson);
          writer = openWriter(combined);
        }
        writer!.end();
        closeFile(combined);
      }
      if (recordsFile) {
        recordsWriter!.end();
        closeFile(recordsFile, true);
      }
      ctx.progress({ done: written, total });
    } finally {
      if (began) sqlite.exec('COMMIT');
      sqlite.pragma(`cache_size = ${Number(cacheSize)}`);
      sqlite.pragma(`mmap_size = ${Number(mmapSize)}`);
    }
    if (ctx.cancelled()) throw new Cancelled();
    const files: ExportFileInfo[] = done
      .filter((f) => !f.records)
      .map((f) => ({
        name: f.name,
        audienceId: f.audienceId == null ? null : plan.audiences.find((a) => a.audienceId === f.audienceId)!.globalId,
        rows: f.rows,
        bytes: f.bytes,
        sha256: f.sha256,
      }));
    ctx.finish(() => {
      const finishedAt = Date.now();
      const metrics = {
        totalExportedProfileCounter: written,
        exportedProfileByNamespaceCounter: namespaces,
        totalTimeMs: Math.round(performance.now() - started),
      };
      const manifest = writeManifest(plan, files, metrics, finishedAt);
      const record = sqlite.prepare(
        `INSERT INTO dataset_files (dataset_id, name, job_id, rows, bytes, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (dataset_id, name) DO UPDATE SET job_id = excluded.job_id, rows = excluded.rows,
           bytes = excluded.bytes, sha256 = excluded.sha256, created_at = excluded.created_at`,
      );
      for (const f of [...files, manifest])
        record.run(plan.datasetId, f.name, plan.jobId, f.rows, f.bytes, f.sha256, finishedAt);
      sqlite
        .prepare('UPDATE datasets SET current_job_id = ?, last_export_at = ? WHERE id = ?')
        .run(plan.jobId, plan.now, plan.datasetId);
      marks.save(conn, plan.datasetId, plan.jobId);
      // Renamed last: if the transaction could not get here, nothing has its final name.
      for (const f of done) publishFile(f.sink.tempPath, join(plan.dir, f.name));
      publishFile(join(plan.dir, `.tmp-${plan.jobId}-manifest.json`), join(plan.dir, 'manifest.json'));
      const result: ExportJobResult = {
        metrics,
        files,
        manifest,
        mode: plan.mode,
        since: plan.since,
        notes: plan.notes,
      };
      return { result, units: written };
    });
    // The replaced export's records file; a crash before this leaves it for the next export to remove.
    removeOtherRecordFiles(plan.dir, plan.jobId);
  } catch (err) {
    for (const f of open) f.sink.abandon();
    removeUnfinishedFiles(plan.dir, plan.jobId);
    throw err;
  }
}

function toRow(plan: ExportPlan, audienceId: string, src: SourceRow, needValues: boolean): ExportRow {
  let attributes: string;
  let values: unknown[] | null = null;
  if (plan.allFields && !needValues) {
    attributes = src.doc ?? 'null';
  } else {
    const doc = src.doc == null ? null : (JSON.parse(src.doc) as Record<string, unknown>);
    const picked = plan.columns.map((c) => valueAt(doc, c.path));
    if (needValues) values = picked;
    if (plan.allFields) attributes = src.doc ?? 'null';
    else if (doc == null) attributes = 'null';
    else {
      const out: Record<string, unknown> = {};
      plan.columns.forEach((c, i) => {
        if (picked[i] !== undefined) setAt(out, c.path, picked[i]);
      });
      attributes = JSON.stringify(out);
    }
  }
  const changedAt = plan.mode === 'CHANGES' ? `,"changedAt":${iso(src.c)}` : '';
  const record = `{"audienceId":${JSON.stringify(audienceId)},"identities":${src.ids},"status":"${src.status}","qualifiedAt":${iso(src.q)},"exitedAt":${iso(src.x)}${changedAt},"attributes":${attributes}}`;
  return {
    audienceId,
    identities: src.ids,
    status: src.status,
    qualifiedAt: src.q,
    exitedAt: src.x,
    changedAt: src.c,
    record,
    values,
  };
}

/** Writes manifest.json (under its temporary name; the caller renames it) and returns its entry. */
function writeManifest(
  plan: ExportPlan,
  files: ExportFileInfo[],
  metrics: ExportJobResult['metrics'],
  finishedAt: number,
): ExportFileInfo {
  const sink = new FileSink(join(plan.dir, `.tmp-${plan.jobId}-manifest.json`));
  const body = {
    job: encodeGlobalId('ExportJob', plan.jobId),
    dataset: encodeGlobalId('Dataset', plan.datasetId),
    format: plan.format,
    mode: plan.mode,
    since: plan.since == null ? null : new Date(plan.since).toISOString(),
    at: new Date(plan.now).toISOString(),
    writtenAt: new Date(finishedAt).toISOString(),
    rows: metrics.totalExportedProfileCounter,
    files,
  };
  sink.write(`${JSON.stringify(body, null, 2)}\n`);
  const { bytes, sha256 } = sink.finish();
  return { name: 'manifest.json', audienceId: null, rows: files.length, bytes, sha256 };
}
