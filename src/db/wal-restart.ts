/**
 * Where a busy writer's log starts over. SQLite reuses the WAL from its start only when a write
 * begins with every frame already copied into the database file; under a steady stream of
 * commits the checkpoint thread (checkpointer.ts) never finishes between two of them, so the log
 * grows until the writer's own automatic checkpoint runs inside the commit that crosses its
 * threshold: copying what is left and syncing both files, 20–40 ms in the middle of a group
 * whose changes then reach subscribers that much later (bench `stream`: every p99 change).
 *
 * This writer's automatic checkpoint is off; it calls `afterGroup()` once a group's replies and
 * changes are out, which checkpoints there when the log has passed the threshold, so the next
 * commit starts the log over.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type Database from 'better-sqlite3';

/**
 * Where the wal-index (the `-shm` file) keeps `mxFrame`, the log's last valid frame: its
 * header's fifth field, in the machine's byte order (sqlite.org/walformat.html). The log file's
 * size would not do: it keeps its largest size when the log starts over.
 */
const MX_FRAME_OFFSET = 16;

export class WalRestarts {
  private shm: number | undefined;
  private readonly word = new Uint32Array(1);
  /** The frame count at which the next checkpoint is taken (raised while readers keep the log from starting over). */
  private nextFrames: number;

  /** `thresholdPages`: the log's frames past which it is checkpointed (the connection's former `wal_autocheckpoint`). */
  constructor(
    private readonly sqlite: Database.Database,
    private readonly thresholdPages: number,
  ) {
    this.nextFrames = Math.max(1, thresholdPages);
    sqlite.pragma('wal_autocheckpoint = 0');
  }

  /** Frames in the log now (since it last started over); 0 before the wal-index exists. */
  frames(): number {
    this.shm ??= openSync(`${this.sqlite.name}-shm`, 'r');
    const read = readSync(this.shm, new Uint8Array(this.word.buffer), 0, 4, MX_FRAME_OFFSET);
    return read === 4 ? this.word[0]! : 0;
  }

  /** Checkpoints when the log has grown past the threshold since it last started over. */
  afterGroup(): void {
    const frames = this.frames();
    if (frames <= this.thresholdPages) this.nextFrames = Math.max(1, this.thresholdPages);
    if (frames <= this.nextFrames) return;
    this.sqlite.pragma('wal_checkpoint(PASSIVE)');
    // A reader still on old frames keeps the log from starting over: check again a quarter on,
    // not after every group (each checkpoint syncs both files).
    this.nextFrames = frames + this.thresholdPages / 4;
  }

  close(): void {
    if (this.shm !== undefined) closeSync(this.shm);
    this.shm = undefined;
  }
}
