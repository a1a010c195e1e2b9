/**
 * Splits an uploaded list into records with their line numbers, fed chunk by chunk, so a file of
 * any size is read in constant memory. CSV fields are parsed by csv-parse; this file finds the
 * record boundaries it can prove (a newline outside quotes), so one malformed row is reported on
 * its own line and reading resumes at the next line, instead of a broken quote swallowing the
 * rest of the file.
 */
import { StringDecoder } from 'node:string_decoder';
import { parse as parseCsv } from 'csv-parse/sync';

/** Longest record accepted, in characters; a longer line is an error of its own. */
export const MAX_RECORD_CHARS = 64 * 1024;
/** Lines one quoted field may span before its opening quote is taken for a broken one. */
const MAX_RECORD_LINES = 100;

export type ListRecord =
  | { line: number; values: string[]; error?: undefined }
  | { line: number; object: unknown; error?: undefined }
  | { line: number; error: string };

export type RecordSink = (record: ListRecord) => void;

interface Line {
  n: number;
  text: string;
}

/** Reads physical lines out of byte chunks; a line over the limit is reported once and skipped. */
class LineReader {
  private readonly decoder = new StringDecoder('utf8');
  private carry = '';
  private skipping = false;
  private n = 0;

  constructor(
    private readonly onLine: (line: Line) => void,
    private readonly onTooLong: (line: number) => void,
  ) {}

  push(chunk: Buffer): void {
    this.take(this.decoder.write(chunk));
  }

  end(): void {
    this.take(this.decoder.end());
    if (this.skipping) this.skipping = false;
    else if (this.carry.length > 0) this.emit(this.carry);
    this.carry = '';
  }

  private take(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl === -1) break;
      const piece = text.slice(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        this.carry = '';
        continue;
      }
      const line = this.carry.length > 0 ? this.carry + piece : piece;
      this.carry = '';
      this.emit(line);
    }
    if (this.skipping) return;
    this.carry += text.slice(start);
    if (this.carry.length > MAX_RECORD_CHARS) {
      // Reported now and dropped up to its end: an endless line cannot fill the memory.
      this.onTooLong(++this.n);
      this.carry = '';
      this.skipping = true;
    }
  }

  private emit(raw: string): void {
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const n = ++this.n;
    if (text.length > MAX_RECORD_CHARS) this.onTooLong(n);
    else this.onLine({ n, text });
  }
}

const tooLong = (line: number): ListRecord => ({
  line,
  error: `The line is longer than ${MAX_RECORD_CHARS} characters`,
});

function quoteCount(text: string): number {
  let count = 0;
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) count++;
  return count;
}

function csvProblem(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'Broken quoting: a closing quote is followed by more characters (double a quote inside a quoted field)';
    case 'CSV_INVALID_OPENING_QUOTE':
      return 'Broken quoting: a quote inside an unquoted field (quote the whole field and double the quote)';
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'Broken quoting: a quoted field is never closed';
    default:
      return `Malformed CSV: ${(err as Error).message}`;
  }
}

/** RFC 4180 CSV, record by record; the first record is the header. */
export class CsvRecords {
  private readonly lines: LineReader;
  private pending: Line[] | undefined;
  private pendingChars = 0;
  private batch: Line[] = [];
  private batchChars = 0;

  constructor(private readonly sink: RecordSink) {
    this.lines = new LineReader(
      (line) => this.line(line),
      (n) => {
        this.flush();
        this.sink(tooLong(n));
      },
    );
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
    this.flush();
  }

  end(): void {
    this.lines.end();
    while (this.pending) this.resync();
    this.flush();
  }

  private line(line: Line): void {
    if (this.pending) {
      this.pending.push(line);
      this.pendingChars += line.text.length + 1;
      if (quoteCount(line.text) % 2 === 1) {
        const lines = this.pending;
        this.pending = undefined;
        this.multiLine(lines);
      } else if (this.pending.length > MAX_RECORD_LINES || this.pendingChars > MAX_RECORD_CHARS) {
        this.resync();
      }
      return;
    }
    if (line.text.length === 0) return;
    if (line.text.indexOf('"') === -1) {
      // Without a quote, a record is exactly its comma-separated pieces (RFC 4180): no parser needed.
      this.flush();
      this.sink({ line: line.n, values: line.text.split(',') });
      return;
    }
    if (quoteCount(line.text) % 2 === 0) {
      this.batch.push(line);
      this.batchChars += line.text.length;
      if (this.batchChars > 1 << 20) this.flush();
      return;
    }
    this.pending = [line];
    this.pendingChars = line.text.length;
  }

  /** A quoted field that spans lines: parsed alone; if it is not one good record, its first line is the bad one. */
  private multiLine(lines: Line[]): void {
    this.flush();
    const first = lines[0]!;
    try {
      const records = parseCsv(lines.map((l) => l.text).join('\n'), { relax_column_count: true }) as string[][];
      if (records.length === 1) {
        this.sink({ line: first.n, values: records[0]! });
        return;
      }
    } catch {}
    this.reject(lines);
  }

  /** The opening quote on the first pending line never closes: that line is bad, the lines after it are read again. */
  private resync(): void {
    const lines = this.pending!;
    this.pending = undefined;
    this.reject(lines);
  }

  private reject(lines: Line[]): void {
    this.flush();
    this.sink({ line: lines[0]!.n, error: 'Broken quoting: a quote opened on this line is never closed' });
    for (const line of lines.slice(1)) this.line(line);
  }

  /** Parses the single-line records gathered so far in one call; a batch that fails is parsed line by line. */
  private flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchChars = 0;
    try {
      const records = parseCsv(batch.map((l) => l.text).join('\n'), { relax_column_count: true }) as string[][];
      if (records.length === batch.length) {
        for (let i = 0; i < batch.length; i++) this.sink({ line: batch[i]!.n, values: records[i]! });
        return;
      }
    } catch {}
    for (const line of batch) {
      try {
        const records = parseCsv(line.text, { relax_column_count: true }) as string[][];
        this.sink(
          records.length === 1
            ? { line: line.n, values: records[0]! }
            : { line: line.n, error: 'Malformed CSV: not one record' },
        );
      } catch (err) {
        this.sink({ line: line.n, error: csvProblem(err) });
      }
    }
  }
}

/** Newline-delimited JSON: one object per non-empty line. */
export class NdjsonRecords {
  private readonly lines: LineReader;

  constructor(sink: RecordSink) {
    this.lines = new LineReader(
      ({ n, text }) => {
        if (text.trim().length === 0) return;
        try {
          sink({ line: n, object: JSON.parse(text) });
        } catch (err) {
          sink({ line: n, error: `Not JSON: ${(err as Error).message}` });
        }
      },
      (n) => sink(tooLong(n)),
    );
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  end(): void {
    this.lines.end();
  }
}

export const LIST_FORMATS = ['CSV', 'NDJSON'] as const;
export type ListFormat = (typeof LIST_FORMATS)[number];

export function recordReader(format: ListFormat, sink: RecordSink): CsvRecords | NdjsonRecords {
  return format === 'CSV' ? new CsvRecords(sink) : new NdjsonRecords(sink);
}
