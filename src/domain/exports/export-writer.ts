/**
 * The files of one export, whatever database its rows come from: the single-process task reads
 * SQLite on a worker thread (export-task.ts), a cluster node reads PostgreSQL
 * (cluster/cluster-export-job.ts); both push the same source rows here, so the lines, columns,
 * marks, hashes and namespace counts of a dataset never depend on which one ran it.
 *
 * Each file is written under a temporary name (`.tmp-<tag>-<name>`, the tag being the job id, or
 * the job id and attempt on a cluster, where a node that lost its lease may still be writing
 * while another re-runs the job) and renamed by `publish`, which the caller runs inside the
 * transaction that records the export.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { encodeGlobalId } from '../ids.js';
import { setAt, valueAt } from './export-columns.js';
import type { ExportFileInfo, ExportJobResult, ExportMetrics } from './export-job.js';
import { exportFileName } from './export-job.js';
import type { ExportPlan } from './export-plan.js';
import { FileSink, publishFile } from './file-sink.js';
import { addNamespaceCounts } from './namespace-tally.js';
import { RecordMarks, recordsFileName } from './record-index.js';
import { createRowWriter, type ExportRow, ndjsonWriter, type RecordWriter, type RowWriter } from './row-writers.js';

/** One membership (or, for CHANGES, one move) as the reading side hands it over. */
export interface SourceRow {
  pid: number;
  status: string;
  /** Qualified, exited and changed instants (ms). */
  q: number | null;
  x: number | null;
  c: number | null;
  /**
   * The profile's attributes as compact JSON text; null when the profile is gone. A reader that
   * hands over `parsed` need give it only when the plan exports whole documents.
   */
  doc: string | null;
  /** The attributes as an object, when the reader has them so (null: the profile is gone); spares parsing `doc`. */
  parsed?: Record<string, unknown> | null;
  /** JSON text of `[{ namespace, id }]`. */
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

type DoneFile = OpenFile & { bytes: number; sha256: string };

type PlanAudience = ExportPlan['audiences'][number];

const iso = (ms: number | null) => (ms == null ? 'null' : `"${new Date(ms).toISOString()}"`);

export class ExportWriter {
  readonly marks = new RecordMarks();
  /** Rows per namespace, counted by the sinks of the NDJSON lines (the NDJSON files, or the records file). */
  readonly namespaces: Record<string, number> = {};
  /** Rows written so far, across files (a profile in two audiences counts twice). */
  written = 0;
  private readonly open: OpenFile[] = [];
  private readonly done: DoneFile[] = [];
  private readonly ndjson: boolean;
  private readonly recordsFile: OpenFile | undefined;
  private readonly recordsWriter: RecordWriter | undefined;
  private combined: OpenFile | undefined;
  private writer: RowWriter | undefined;
  private records: { name: string; writer: RecordWriter } | undefined;
  private audience: PlanAudience | undefined;

  /** Opens the records file at once (CSV, Parquet); the caller has made the dataset's folder. */
  constructor(
    private readonly plan: ExportPlan,
    private readonly tag = String(plan.jobId),
  ) {
    this.ndjson = plan.format === 'NDJSON';
    // NDJSON files are their own records; other formats write the lines to a records file too.
    this.recordsFile = this.ndjson ? undefined : this.newFile(null, true, recordsFileName(plan.jobId));
    this.recordsWriter = this.recordsFile && ndjsonWriter(this.recordsFile.sink);
  }

  /** Where a file is written until `publish` gives it its name. */
  tempPath(name: string): string {
    return join(this.plan.dir, `.tmp-${this.tag}-${name}`);
  }

  /** The rows that follow are this audience's (a new file when each audience has its own). */
  beginAudience(audience: PlanAudience): void {
    this.audience = audience;
    if (!this.combined || this.plan.audiencePerFile) {
      this.combined = this.newFile(this.plan.audiencePerFile ? audience.audienceId : null, this.ndjson);
      this.writer = this.openWriter(this.combined);
    }
  }

  /** A finished NDJSON line (an export whose lines the database builds whole). */
  writeLine(line: string): void {
    const out = this.records!;
    if (this.marks.due(this.written, out.name)) this.marks.add(this.written, out.name, out.writer.position());
    this.combined!.sink.writeLine(line);
    this.combined!.rows++;
    this.written++;
  }

  writeRow(src: SourceRow): void {
    const row = toRow(this.plan, this.audience!.globalId, src, !this.ndjson);
    const out = this.records!;
    if (this.marks.due(this.written, out.name)) this.marks.add(this.written, out.name, out.writer.position());
    this.writer!.write(row);
    this.recordsWriter?.write(row);
    this.combined!.rows++;
    this.written++;
  }

  endAudience(): void {
    if (!this.plan.audiencePerFile) return;
    this.writer!.end();
    this.closeFile(this.combined!);
  }

  /** Ends the last file (an empty one when there was no audience) and the records file. */
  end(): void {
    if (!this.plan.audiencePerFile) {
      if (!this.combined) {
        this.combined = this.newFile(null, this.ndjson);
        this.writer = this.openWriter(this.combined);
      }
      this.writer!.end();
      this.closeFile(this.combined);
    }
    if (this.recordsFile) {
      this.recordsWriter!.end();
      this.closeFile(this.recordsFile, true);
    }
  }

  /**
   * Once every row is written: the export's metrics, its manifest written under its temporary
   * name, and what the recording transaction stores — the files, the manifest's entry and the
   * job's result, as both ways of running an export record them.
   */
  complete(
    started: number,
    finishedAt: number,
  ): { files: ExportFileInfo[]; manifest: ExportFileInfo; result: ExportJobResult } {
    const { plan } = this;
    const files = this.files();
    const metrics: ExportMetrics = {
      totalExportedProfileCounter: this.written,
      exportedProfileByNamespaceCounter: this.namespaces,
      totalTimeMs: Math.round(performance.now() - started),
    };
    const manifest = this.writeManifest(files, metrics, finishedAt);
    return {
      files,
      manifest,
      result: { metrics, files, manifest, mode: plan.mode, since: plan.since, notes: plan.notes },
    };
  }

  /** The files as the job's result lists them (not the records file). */
  private files(): ExportFileInfo[] {
    return this.done
      .filter((f) => !f.records)
      .map((f) => ({
        name: f.name,
        audienceId:
          f.audienceId == null ? null : this.plan.audiences.find((a) => a.audienceId === f.audienceId)!.globalId,
        rows: f.rows,
        bytes: f.bytes,
        sha256: f.sha256,
      }));
  }

  /** Writes manifest.json under its temporary name (`publish` renames it) and returns its entry. */
  private writeManifest(files: ExportFileInfo[], metrics: ExportMetrics, finishedAt: number): ExportFileInfo {
    const { plan } = this;
    const sink = new FileSink(this.tempPath('manifest.json'));
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

  /** Renames the finished files and the manifest to their names: last in the recording transaction. */
  publish(): void {
    for (const f of this.done) publishFile(f.sink.tempPath, join(this.plan.dir, f.name));
    publishFile(this.tempPath('manifest.json'), join(this.plan.dir, 'manifest.json'));
  }

  /** Closes the files still open without finishing them (a failure or a cancel). */
  abandon(): void {
    for (const f of [...this.open]) f.sink.abandon();
  }

  /**
   * Removes this writer's own temporary files, and only those: on a cluster another attempt of
   * the same job may be writing beside them.
   */
  removeTemporaryFiles(): void {
    this.abandon();
    for (const f of [...this.open, ...this.done]) rmSync(f.sink.tempPath, { force: true });
    rmSync(this.tempPath('manifest.json'), { force: true });
  }

  private newFile(
    audienceId: number | null,
    countNamespaces: boolean,
    name = exportFileName(this.plan.jobId, this.plan.format, audienceId),
  ): OpenFile {
    const sink = new FileSink(this.tempPath(name), { countNamespaces });
    const file = { name, audienceId, sink, rows: 0 };
    this.open.push(file);
    return file;
  }

  private closeFile(file: OpenFile, records = false): void {
    this.open.splice(this.open.indexOf(file), 1);
    const { bytes, sha256, namespaceSets } = file.sink.finish();
    addNamespaceCounts(this.namespaces, namespaceSets);
    if (file.rows === 0 && this.plan.emptyAudienceFilter && !records) rmSync(file.sink.tempPath, { force: true });
    else this.done.push({ ...file, records, bytes, sha256 });
  }

  private openWriter(file: OpenFile): RowWriter {
    if (this.ndjson) {
      const w = ndjsonWriter(file.sink);
      this.records = { name: file.name, writer: w };
      return w;
    }
    this.records = { name: this.recordsFile!.name, writer: this.recordsWriter! };
    return createRowWriter(this.plan.format, file.sink, this.plan.columns, this.plan.mode === 'CHANGES');
  }
}

/** A source row as every format needs it; `record` is the NDJSON line (and the dataset record). */
export function toRow(plan: ExportPlan, audienceId: string, src: SourceRow, needValues: boolean): ExportRow {
  let attributes: string;
  let values: unknown[] | null = null;
  if (plan.allFields && !needValues) {
    attributes = src.doc ?? 'null';
  } else {
    const doc =
      src.parsed !== undefined ? src.parsed : src.doc == null ? null : (JSON.parse(src.doc) as Record<string, unknown>);
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
