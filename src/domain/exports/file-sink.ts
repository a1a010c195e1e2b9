import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

const FLUSH_BYTES = 1 << 20;

/** What a finished file is: its size and its SHA-256 (hex). */
export interface WrittenFile {
  bytes: number;
  sha256: string;
}

/**
 * An export file being written under a temporary name: bytes are buffered up to 1 MiB and
 * written synchronously (the task's thread waits for the disk, which is its back-pressure), hashed
 * as they go, and fsynced on `finish`. Nothing appears under the final name until `publish`.
 */
export class FileSink {
  private readonly fd: number;
  private readonly hash: Hash = createHash('sha256');
  private chunks: Buffer[] = [];
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
    const buf =
      typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    // The parquet writer reuses its buffer after a flush: keep a copy of what is not on disk yet.
    this.chunks.push(typeof data === 'string' ? buf : Buffer.from(buf));
    this.pending += buf.byteLength;
    if (this.pending >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.pending === 0) return;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.pending);
    let offset = 0;
    while (offset < buf.byteLength) offset += writeSync(this.fd, buf, offset);
    this.hash.update(buf);
    this.written += buf.byteLength;
    this.chunks = [];
    this.pending = 0;
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
