import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { ExportFormat } from './datasets.js';
import type { AttributeColumn } from './export-columns.js';
import type { FileSink } from './file-sink.js';

/** One exported row, as every format needs it. */
export interface ExportRow {
  /** Global id of the audience. */
  audienceId: string;
  /** JSON text of `[{ namespace, id }]`. */
  identities: string;
  status: string;
  qualifiedAt: number | null;
  exitedAt: number | null;
  /** When the change happened (CHANGES exports only). */
  changedAt: number | null;
  /** The row as one JSON object (the NDJSON line and the dataset record). */
  record: string;
  /** Attribute values in column order (CSV and Parquet only). */
  values: unknown[] | null;
}

export interface RowWriter {
  write(row: ExportRow): void;
  /** Writes what is still buffered and the format's trailer. */
  end(): void;
}

/** The columns every row has before its attributes. */
export function baseColumns(changes: boolean): string[] {
  return ['audienceId', 'identities', 'status', 'qualifiedAt', 'exitedAt', ...(changes ? ['changedAt'] : [])];
}

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

export function createRowWriter(
  format: ExportFormat,
  sink: FileSink,
  columns: AttributeColumn[],
  changes: boolean,
): RowWriter {
  if (format === 'NDJSON') return ndjsonWriter(sink);
  if (format === 'CSV') return csvWriter(sink, columns, changes);
  return parquetWriter(sink, columns, changes);
}

/** A writer of NDJSON lines that can say where the next line will start (a dataset record mark). */
export interface RecordWriter extends RowWriter {
  /** The byte offset in the file where the next line written starts. */
  position(): number;
}

export function ndjsonWriter(sink: FileSink): RecordWriter {
  return {
    write: (row) => sink.writeLine(row.record),
    end: () => {},
    position: () => sink.position,
  };
}

/** RFC 4180: a field with a comma, quote, CR or LF is quoted, its quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function csvValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return csvField(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return csvField(JSON.stringify(value));
}

function csvWriter(sink: FileSink, columns: AttributeColumn[], changes: boolean): RowWriter {
  let batch = `${[...baseColumns(changes), ...columns.map((c) => c.path)].map(csvField).join(',')}\r\n`;
  return {
    write(row) {
      let line = `${csvField(row.audienceId)},${csvField(row.identities)},${row.status},${iso(row.qualifiedAt) ?? ''},${iso(row.exitedAt) ?? ''}`;
      if (changes) line += `,${iso(row.changedAt) ?? ''}`;
      for (const v of row.values ?? []) line += `,${csvValue(v)}`;
      batch += `${line}\r\n`;
      if (batch.length > 65_536) {
        sink.write(batch);
        batch = '';
      }
    },
    end() {
      if (batch) sink.write(batch);
    },
  };
}

const ROW_GROUP = 10_000;

type ParquetElement = { name: string; type?: string; converted_type?: string; repetition_type?: string };

function parquetElement(name: string, kind: AttributeColumn['kind'] | 'timestamp'): ParquetElement {
  const base = { name, repetition_type: 'OPTIONAL' };
  switch (kind) {
    case 'string':
      return { ...base, type: 'BYTE_ARRAY', converted_type: 'UTF8' };
    case 'number':
      return { ...base, type: 'DOUBLE' };
    case 'boolean':
      return { ...base, type: 'BOOLEAN' };
    case 'datetime':
    case 'timestamp':
      return { ...base, type: 'INT64', converted_type: 'TIMESTAMP_MILLIS' };
    case 'json':
      return { ...base, type: 'BYTE_ARRAY', converted_type: 'JSON' };
  }
}

/** A value of an attribute as its typed Parquet column holds it; a value of another type is null. */
function parquetValue(kind: AttributeColumn['kind'], value: unknown): unknown {
  if (value === undefined || value === null) return null;
  switch (kind) {
    case 'string':
      return typeof value === 'string' ? value : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'datetime': {
      const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
      return Number.isNaN(ms) ? null : ms;
    }
    case 'json':
      return value;
  }
}

/**
 * Parquet with typed columns from the profile schema, written a row group (10,000 rows) at a
 * time through the sink: memory holds one row group, never the file.
 */
function parquetWriter(sink: FileSink, columns: AttributeColumn[], changes: boolean): RowWriter {
  const names = [...baseColumns(changes), ...columns.map((c) => c.path)];
  const schema = [
    { name: 'root', num_children: names.length },
    parquetElement('audienceId', 'string'),
    parquetElement('identities', 'json'),
    parquetElement('status', 'string'),
    parquetElement('qualifiedAt', 'timestamp'),
    parquetElement('exitedAt', 'timestamp'),
    ...(changes ? [parquetElement('changedAt', 'timestamp')] : []),
    ...columns.map((c) => parquetElement(c.path, c.kind)),
  ];
  const out = new ByteWriter();
  // Every flushed byte goes to the sink; the writer's buffer starts over (ByteWriter keeps `offset` as the total).
  const grow = out.ensure.bind(out);
  out.ensure = (size: number) => {
    if (out.index > 1 << 20) flushOut();
    grow(size);
  };
  const flushOut = () => {
    if (out.index > 0) sink.write(new Uint8Array(out.buffer, 0, out.index));
    out.index = 0;
  };
  // ParquetWriter calls flush after each row group when the writer has one.
  Object.assign(out, { flush: flushOut });
  out.finish = flushOut;
  const writer = new ParquetWriter({ writer: out, schema: schema as never, statistics: false });
  let data: unknown[][] = names.map(() => []);
  const flushGroup = () => {
    if (data[0]!.length === 0) return;
    // Our `flush` is synchronous, so the writer returns nothing to wait for.
    void writer.write({
      columnData: names.map((name, i) => ({ name, data: data[i]! as never })),
      rowGroupSize: ROW_GROUP,
    });
    data = names.map(() => []);
  };
  return {
    write(row) {
      data[0]!.push(row.audienceId);
      data[1]!.push(JSON.parse(row.identities));
      data[2]!.push(row.status);
      data[3]!.push(row.qualifiedAt);
      data[4]!.push(row.exitedAt);
      let i = 5;
      if (changes) data[i++]!.push(row.changedAt);
      columns.forEach((c, k) => {
        data[i + k]!.push(parquetValue(c.kind, row.values?.[k]));
      });
      if (data[0]!.length >= ROW_GROUP) flushGroup();
    },
    end() {
      flushGroup();
      void writer.finish();
    },
  };
}
