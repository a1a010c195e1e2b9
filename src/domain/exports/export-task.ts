import { mkdirSync } from 'node:fs';
import type { Connection } from '../../db/index.js';
import { Cancelled } from '../jobs/cancelled.js';
import type { JobTask, TaskContext } from '../jobs/task.js';
import { statusSql } from '../membership-statuses.js';
import { profileChangedSince } from '../profiles.js';
import { removeUnfinishedFiles } from './export-job.js';
import type { ExportPlan } from './export-plan.js';
import { ExportWriter, type SourceRow } from './export-writer.js';
import { removeOtherRecordFiles } from './record-index.js';

/** The export kind's task, which the job worker runs. */
const exportTask: JobTask<'EXPORT', ExportPlan> = (conn, plan, ctx) => runExport(conn, plan, ctx);
export default exportTask;

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
  const fresh =
    plan.fromIngestTimestamp != null ? ` AND ${profileChangedSince('p', '>=', '@fromIngest', '@sandbox')}` : '';
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
  const changes = plan.mode === 'CHANGES';
  let out: ExportWriter | undefined;
  let lastReport = 0;
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
        ...(plan.fromIngestTimestamp != null ? { fromIngest: plan.fromIngestTimestamp, sandbox: plan.sandboxId } : {}),
        ...(changes ? { since: plan.since ?? 0, now: plan.now } : {}),
        ...(lines ? { gid: audience.globalId } : {}),
      });
      const counter = sqlite.prepare(rowQuery(plan, true)).pluck();
      const total = plan.audiences.reduce((n, a) => n + (counter.get(params(a)) as number), 0);
      ctx.progress({ done: 0, total });
      const reader = sqlite.prepare(rowQuery(plan, false));
      const writer = new ExportWriter(plan);
      out = writer;
      const afterRow = () => {
        if (writer.written % 1000 === 0) {
          if (ctx.cancelled()) throw new Cancelled();
          const now = Date.now();
          if (now - lastReport >= 50) {
            lastReport = now;
            ctx.progress({ done: writer.written, total });
          }
        }
      };
      for (const audience of plan.audiences) {
        writer.beginAudience(audience);
        if (lines) {
          for (const line of reader.pluck().iterate(params(audience)) as IterableIterator<string>) {
            writer.writeLine(line);
            afterRow();
          }
        } else {
          for (const src of reader.iterate(params(audience)) as IterableIterator<SourceRow>) {
            writer.writeRow(src);
            afterRow();
          }
        }
        writer.endAudience();
      }
      writer.end();
      ctx.progress({ done: writer.written, total });
    } finally {
      if (began) sqlite.exec('COMMIT');
      sqlite.pragma(`cache_size = ${Number(cacheSize)}`);
      sqlite.pragma(`mmap_size = ${Number(mmapSize)}`);
    }
    if (ctx.cancelled()) throw new Cancelled();
    const writer = out!;
    ctx.finish(() => {
      const finishedAt = Date.now();
      const { files, manifest, result } = writer.complete(started, finishedAt);
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
      writer.marks.save(conn, plan.datasetId, plan.jobId);
      // Renamed last: if the transaction could not get here, nothing has its final name.
      writer.publish();
      return { result, units: writer.written };
    });
    // The replaced export's records file; a crash before this leaves it for the next export to remove.
    removeOtherRecordFiles(plan.dir, plan.jobId);
  } catch (err) {
    out?.abandon();
    removeUnfinishedFiles(plan.dir, plan.jobId);
    throw err;
  }
}
