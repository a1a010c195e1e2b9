/**
 * Writes an uploaded list to the data directory as it arrives (never whole in memory), holding it
 * to the size limit and checking its CSV header on the way, so a wrong file is refused before
 * the run exists. The run reads the file from there, again after a crash.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, createWriteStream, mkdirSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { badInput } from '../errors.js';
import { type ListFormat, MAX_RECORD_CHARS } from './list-records.js';
import { csvColumns, type ListShape } from './list-rows.js';

/** The largest list a run reads. */
export const MAX_LIST_BYTES = 1024 ** 3;

export interface StagedUpload {
  path: string;
  format: ListFormat;
  bytes: number;
}

export const uploadsDir = (dataDir: string) => join(dataDir, 'uploads');

/** CSV unless the name or the first character says NDJSON. */
function formatOf(fileName: string | null, first: number | undefined): ListFormat {
  if (fileName && /\.(ndjson|jsonl)$/i.test(fileName)) return 'NDJSON';
  if (fileName && /\.csv$/i.test(fileName)) return 'CSV';
  return first === 0x7b ? 'NDJSON' : 'CSV';
}

/**
 * Streams `source` into a new file under the data directory. BAD_USER_INPUT when it passes
 * `maxBytes` or its CSV header does not name the audience's fields (the file is removed then).
 */
export async function stageUpload(
  dataDir: string,
  source: AsyncIterable<Uint8Array>,
  options: { fileName: string | null; shape: ListShape; maxBytes?: number; field?: string },
): Promise<StagedUpload> {
  const maxBytes = options.maxBytes ?? MAX_LIST_BYTES;
  const field = options.field ?? 'file';
  mkdirSync(uploadsDir(dataDir), { recursive: true });
  const path = join(uploadsDir(dataDir), `${randomUUID()}.upload`);
  const out = createWriteStream(path);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => {});
  let bytes = 0;
  let format: ListFormat | undefined;
  let head = '';
  let headerChecked = false;
  try {
    for await (const chunk of source) {
      const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      bytes += buf.length;
      if (bytes > maxBytes) {
        throw badInput(`The file is larger than ${maxBytes} bytes, the most one ingestion run reads`, field);
      }
      format ??= formatOf(
        options.fileName,
        buf.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0xef),
      );
      if (format === 'CSV' && !headerChecked) {
        head += buf.toString('utf8');
        const nl = head.indexOf('\n');
        if (nl !== -1 || head.length > MAX_RECORD_CHARS) {
          checkHeader(nl === -1 ? head : head.slice(0, nl), options.shape, field);
          headerChecked = true;
          head = '';
        }
      }
      if (!out.write(buf))
        await Promise.race([new Promise<void>((resolve) => out.once('drain', () => resolve())), failed]);
    }
    if (format === 'CSV' && !headerChecked) checkHeader(head, options.shape, field);
    if (bytes === 0) throw badInput('The file is empty', field);
    await Promise.race([new Promise<void>((resolve) => out.end(resolve)), failed]);
    return { path, format: format ?? 'CSV', bytes };
  } catch (err) {
    out.destroy();
    rmSync(path, { force: true });
    throw err;
  }
}

function checkHeader(line: string, shape: ListShape, field: string): void {
  const text = line.replace(/^\uFEFF/, '').replace(/\r$/, '');
  if (text.length > MAX_RECORD_CHARS)
    throw badInput(`The CSV header is longer than ${MAX_RECORD_CHARS} characters`, field);
  let header: string[];
  try {
    header = (parseCsv(text) as string[][])[0] ?? [];
  } catch (err) {
    throw badInput(`The CSV header is not valid CSV: ${(err as Error).message}`, field);
  }
  const columns = csvColumns(header, shape);
  if (typeof columns === 'string') throw badInput(columns, field);
}

/** Rows given inline, as the NDJSON they would be in a file. */
export async function* rowsAsNdjson(rows: readonly unknown[]): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < rows.length; i += 1000) {
    yield Buffer.from(
      `${rows
        .slice(i, i + 1000)
        .map((r) => JSON.stringify(r))
        .join('\n')}\n`,
    );
  }
}

/**
 * Takes over a file already in the data directory (an HTTP upload the server wrote there as it
 * arrived): the same checks as `stageUpload`, then a rename instead of a copy.
 */
export function adoptUpload(
  dataDir: string,
  file: string,
  options: { fileName: string | null; shape: ListShape; maxBytes?: number },
): StagedUpload {
  const maxBytes = options.maxBytes ?? MAX_LIST_BYTES;
  const bytes = statSync(file).size;
  if (bytes > maxBytes)
    throw badInput(`The file is larger than ${maxBytes} bytes, the most one ingestion run reads`, 'file');
  if (bytes === 0) throw badInput('The file is empty', 'file');
  const head = Buffer.alloc(Math.min(bytes, MAX_RECORD_CHARS + 1));
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const format = formatOf(
    options.fileName,
    head.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0xef),
  );
  if (format === 'CSV') {
    const text = head.toString('utf8');
    const nl = text.indexOf('\n');
    checkHeader(nl === -1 ? text : text.slice(0, nl), options.shape, 'file');
  }
  mkdirSync(uploadsDir(dataDir), { recursive: true });
  const path = join(uploadsDir(dataDir), `${randomUUID()}.upload`);
  renameSync(file, path);
  return { path, format, bytes };
}
