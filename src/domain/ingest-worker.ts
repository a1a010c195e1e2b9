/**
 * The ingest thread's side (ingest-thread.ts has the main thread's): a connection of its own to
 * the database file, the streaming segmentation with its windows and sweep, and the writer that
 * writes each group the main thread sends. Changes go back to the main thread's event bus as
 * they are published, then the group's reply, on one port, so a request is answered only after
 * its changes are on their way to subscribers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { IngestLimits } from '../config.js';
import { openDatabase, WRITER_CACHE_KIB } from '../db/index.js';
import { WalRestarts } from '../db/wal-restart.js';
import {
  type GroupReply,
  GroupsInOrder,
  LocalIngestWriter,
  type PreparedWrite,
  type SentReply,
  sendReply,
} from './ingest-writer.js';
import { packChanges } from './membership-change-packing.js';
import type { MembershipChange } from './memberships.js';
import { StreamingSegmentation, streamingEvaluationsTotal } from './streaming.js';
import { streamingWindowReadsTotal } from './streaming-window.js';

export interface IngestThreadData {
  file: string;
  /** The main connection's write gate (db/write-gate.ts): this thread takes turns with the others. */
  writeGate: SharedArrayBuffer;
  limits: IngestLimits;
  sweepMs: number;
  windowProfiles?: number;
  logLevel: string;
  /**
   * The main connection's `wal_autocheckpoint`: with the checkpoint thread running it is a
   * backstop far above SQLite's default (db/checkpointer.ts). Past it this thread checkpoints
   * between groups, not inside a commit (db/wal-restart.ts).
   */
  autocheckpointPages: number;
}

/** `epoch`: the main thread's count of busy replies heard when it sent the group (ingest-thread.ts). */
export type ToIngestThread = { type: 'write'; id: number; epoch: number; group: PreparedWrite[] } | { type: 'stop' };

/** Counters the thread keeps for the process's metrics: what it added since its last message. */
export interface IngestThreadCounts {
  evaluations: number;
  windowHits: number;
  windowMisses: number;
}

/** Membership changes for one sandbox's topic, packed (membership-change-packing.ts). */
export interface PackedPublish {
  sandboxId: number;
  changes: Float64Array;
}

export type FromIngestThread =
  | { type: 'publish'; published: PackedPublish[] }
  | { type: 'reply'; id: number; reply: SentReply; published: PackedPublish[]; counts: IngestThreadCounts };

const port = parentPort;
if (port) {
  const data = workerData as IngestThreadData;
  const conn = openDatabase(data.file, { migrate: false, writeGate: data.writeGate, cacheKib: WRITER_CACHE_KIB });
  // The log starts over between groups, not inside one's commit.
  const walRestarts = new WalRestarts(conn.sqlite, data.autocheckpointPages);
  // What a message carries is copied into the other thread; packed, a commit's changes are
  // one buffer handed over without a copy (a few hundred change objects cost milliseconds).
  const post = (message: FromIngestThread) =>
    port.postMessage(
      message,
      message.published.map((p) => p.changes.buffer as ArrayBuffer),
    );
  /** A group's changes wait for its reply, so they go in the same message, before it is answered. */
  let published: PackedPublish[] | undefined;
  const streaming = new StreamingSegmentation({
    conn,
    // Streaming publishes membership changes only, grouped by sandbox (StreamingSegmentation.publish).
    bus: {
      publishAll: (_topic, payloads) => {
        const changes = payloads as readonly MembershipChange[];
        const packed = { sandboxId: changes[0]!.sandboxId, changes: packChanges(changes) };
        if (published) published.push(packed);
        else post({ type: 'publish', published: [packed] });
      },
    },
    log: pino({ level: data.logLevel }).child({ component: 'ingest-thread' }),
    sweepMs: data.sweepMs,
    windowProfiles: data.windowProfiles,
    // This thread writes events, profiles and memberships only; definitions come from the main
    // thread's connection.
    othersWriteDefinitions: true,
  });
  const writer = new LocalIngestWriter({ conn, limits: data.limits, streaming });
  writer.start();
  let counted = { evaluations: 0, hit: 0, miss: 0 };
  const counts = (): IngestThreadCounts => {
    const evaluations = streamingEvaluationsTotal();
    const { hit, miss } = streamingWindowReadsTotal();
    const delta = {
      evaluations: evaluations - counted.evaluations,
      windowHits: hit - counted.hit,
      windowMisses: miss - counted.miss,
    };
    counted = { evaluations, hit, miss };
    return delta;
  };
  // The main thread sends the next group before this one is answered (ThreadIngestWriter.depth).
  const inOrder = new GroupsInOrder();
  port.on('message', (message: ToIngestThread) => {
    if (message.type === 'stop') {
      // With the sweep stopped and the port closed the thread has nothing left and exits.
      void writer.close().then(() => {
        walRestarts.close();
        conn.close();
        port.close();
      });
      return;
    }
    // On a worker thread the write gate is taken blocking (this thread has nothing else to do),
    // so the reply is never a promise here.
    published = [];
    try {
      let reply: GroupReply;
      try {
        reply = inOrder.write(message.epoch, () => writer.writePrepared(message.group) as GroupReply);
      } catch (error) {
        // Every group is answered, or its requests would wait for ever.
        reply = { busy: false, outcomes: message.group.map(() => ({ ok: false, error })) };
      }
      post({ type: 'reply', id: message.id, reply: sendReply(reply), published, counts: counts() });
    } finally {
      published = undefined;
    }
    try {
      walRestarts.afterGroup();
    } catch {
      // A checkpoint that failed leaves the log as it was: the next group tries again.
    }
  });
}
