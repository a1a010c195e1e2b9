import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

const BUFFER_BYTES = 1 << 20;

/** What a finished file is: its size and its SHA-256 (hex). */
export interface WrittenFile {
  bytes: number;
  sha256: string;
}

/**
 * An export file being written under a temporary name: text is encoded straight into one 1 MiB
 * buffer, which is hashed and written synchronously when full (the task's thread waits for the
 * disk, which is its back-pressure), and fsynced on `finish`. Nothing appears under the final
 * name until `publish`.
 */
export class FileSink {
  private readonly fd: number;
  private readonly hash: Hash = createHash('sha256');
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  private pending = 0;
  private written = 0;

  constructor(readonly tempPath: string) {
    this.fd = openSync(tempPath, 'w');
  }

  /** Bytes written so far (on disk and buffered): where the next write starts in the file. */
  get position(): number {
    return this.written + this.pending;
  }

  write(data: string | Uint8Array): void {
    if (typeof data === 'string') {
      // A UTF-16 unit is at most 3 UTF-8 bytes: when that much room is left, the text fits whole.
      if (data.length * 3 > BUFFER_BYTES - this.pending) this.flush();
      if (data.length * 3 <= BUFFER_BYTES) this.pending += this.buffer.write(data, this.pending, 'utf8');
      else this.writeOut(Buffer.from(data, 'utf8'));
      return;
    }
    if (data.byteLength > BUFFER_BYTES - this.pending) this.flush();
    // Copied: the parquet writer reuses its buffer after a flush.
    if (data.byteLength <= BUFFER_BYTES) {
      this.buffer.set(data, this.pending);
      this.pending += data.byteLength;
    } else this.writeOut(data);
  }

  private flush(): void {
    if (this.pending === 0) return;
    const filled = this.buffer.subarray(0, this.pending);
    this.pending = 0;
    this.writeOut(filled);
  }

  private writeOut(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.byteLength) offset += writeSync(this.fd, data, offset);
    this.hash.update(data);
    this.written += data.byteLength;
  }

  /** Flushes, fsyncs and closes the temporary file. */
  finish(): WrittenFile {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    return { bytes: this.written, sha256: this.hash.digest('hex') };
  }

  /** Closes without publishing (a failed or cancelled export). */
  abandon(): void {
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
