import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { createNamespaceTally, type NamespaceSets } from './namespace-tally.js';
import { SinkThread, SLOT_BYTES } from './sink-thread.js';

/** What a finished file is: its size, its SHA-256 (hex) and, if counted, its rows per namespace set. */
export interface WrittenFile {
  bytes: number;
  sha256: string;
  namespaceSets: NamespaceSets;
}

export interface FileSinkOptions {
  /** The file is NDJSON export lines: count their identity namespaces (namespace-tally.ts). */
  countNamespaces?: boolean;
}

/**
 * An export file being written under a temporary name. Text is encoded straight into a 1 MiB
 * buffer. A file that stays within it is written, hashed and fsynced on this thread by `finish`;
 * once a file outgrows it, a thread of its own does that work (sink-thread.ts) and the buffer is
 * one of that thread's slots, handed over full while this thread goes on producing rows (and
 * waits only when the thread falls 16 MiB behind: the back-pressure). Small files never pay for
 * starting a thread. Nothing appears under the final name until `publish`.
 */
export class FileSink {
  private readonly fd: number;
  private buffer: Buffer = Buffer.allocUnsafe(SLOT_BYTES);
  private thread: SinkThread | undefined;
  private pending = 0;
  private written = 0;
  private closed = false;

  constructor(
    readonly tempPath: string,
    private readonly options: FileSinkOptions = {},
  ) {
    this.fd = openSync(tempPath, 'w');
  }

  /** Bytes written so far (handed on and buffered): where the next write starts in the file. */
  get position(): number {
    return this.written + this.pending;
  }

  /** Writes text (UTF-8) or bytes; bytes are copied, so the caller may reuse its buffer. */
  write(data: string | Uint8Array): void {
    if (typeof data !== 'string') {
      this.copy(data);
      return;
    }
    // A UTF-16 unit is at most 3 UTF-8 bytes: when that much room is left, the text fits whole.
    if (data.length * 3 > SLOT_BYTES - this.pending) this.flush();
    if (data.length * 3 <= SLOT_BYTES) this.pending += this.buffer.write(data, this.pending, 'utf8');
    else this.copy(Buffer.from(data, 'utf8'));
  }

  /** Writes text and a newline (an NDJSON line). */
  writeLine(text: string): void {
    if (text.length * 3 + 1 > SLOT_BYTES - this.pending) this.flush();
    if (text.length * 3 + 1 > SLOT_BYTES) this.copy(Buffer.from(`${text}\n`, 'utf8'));
    else {
      this.pending += this.buffer.write(text, this.pending, 'utf8');
      this.buffer[this.pending++] = 10;
    }
  }

  /** Copies bytes into the buffer, handing it on each time it is full. */
  private copy(data: Uint8Array): void {
    for (let off = 0; off < data.byteLength; ) {
      if (this.pending === SLOT_BYTES) this.flush();
      const n = Math.min(data.byteLength - off, SLOT_BYTES - this.pending);
      this.buffer.set(data.subarray(off, off + n), this.pending);
      this.pending += n;
      off += n;
    }
  }

  /** Hands the full buffer on: to the file's thread, started the first time. */
  private flush(): void {
    if (this.pending === 0) return;
    if (this.thread) this.thread.give(this.pending);
    else {
      this.thread = new SinkThread(this.fd, this.options.countNamespaces === true);
      this.thread.take().set(this.buffer.subarray(0, this.pending));
      this.thread.give(this.pending);
    }
    this.written += this.pending;
    this.pending = 0;
    this.buffer = this.thread.take();
  }

  /** Writes what is left, fsyncs and closes the temporary file. */
  finish(): WrittenFile {
    try {
      if (this.thread) {
        if (this.pending > 0) this.thread.give(this.pending);
        this.written += this.pending;
        this.pending = 0;
        const { bytes, sha256, sets } = this.thread.finish();
        return { bytes, sha256, namespaceSets: sets };
      }
      // The whole file is in the buffer: written, hashed and counted here.
      const data = this.buffer.subarray(0, this.pending);
      for (let offset = 0; offset < data.byteLength; ) offset += writeSync(this.fd, data, offset);
      fsyncSync(this.fd);
      let namespaceSets: NamespaceSets = [];
      if (this.options.countNamespaces) {
        const tally = createNamespaceTally();
        tally.push(data);
        namespaceSets = tally.sets();
      }
      return { bytes: data.byteLength, sha256: createHash('sha256').update(data).digest('hex'), namespaceSets };
    } finally {
      // A thread that failed or never started writes no more: its descriptor can go.
      this.close();
    }
  }

  /** Closes without publishing (a failed or cancelled export). */
  abandon(): void {
    // A thread that does not stop may still write: its descriptor then stays open rather than be reused.
    if (this.thread && !this.thread.abandon()) return;
    this.close();
  }

  /** Closes the descriptor once: a second close could close a descriptor reused since. */
  private close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {}
  }
}

/** Renames a finished temporary file to its final name and makes the rename durable. */
export function publishFile(tempPath: string, finalPath: string): void {
  renameSync(tempPath, finalPath);
  const dir = openSync(dirname(finalPath), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
