/**
 * The thread that puts a large export file on disk. The task's thread fills 1 MiB slots of shared
 * memory (file-sink.ts encodes rows straight into them) and goes back to reading SQLite; this
 * thread writes each filled slot to the file, hashes it (the SHA-256 of exactly the bytes
 * written, in order), counts identity namespaces if asked (namespace-tally.ts) and syncs the
 * file, so on two cores that work overlaps with the reading instead of adding to it. The slots
 * are the back-pressure: when all are filled the task's thread waits for the disk, as it did
 * writing itself.
 *
 * The two threads share counters (Atomics) instead of messages: the task's thread runs one
 * synchronous loop and never turns its event loop, so it could not receive a message; the
 * result (hash, counts) or an error comes back on a port read with `receiveMessageOnPort`.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { LOWER_THREAD_PRIORITY_SOURCE } from '../../db/thread-priority.js';
import { NAMESPACE_TALLY_SOURCE, type NamespaceSets } from './namespace-tally.js';

export const SLOT_BYTES = 1 << 20;
/** Slots in the ring: how far the task's thread may run ahead of the disk. */
const SLOTS = 16;
/**
 * The thread sleeps until this many slots are filled: each wake-up is a context switch, which on
 * a busy machine takes the core from the reading thread, so a few large ones beat one per slot.
 */
const WAKE_SLOTS = 4;
/** The thread syncs the file every this many bytes, so the final fsync has little left to wait for. */
const SYNC_EVERY = 1 << 26;
/** How long the task's thread waits for the thread to start before giving the file up. */
const START_TIMEOUT_MS = 60_000;
/**
 * How long it waits for a slot or the end with the thread making no progress at all: a thread
 * that died without a word (out of memory) can only be told apart from a slow disk this way.
 */
const STALL_TIMEOUT_MS = 300_000;

// Indexes of the shared counters; SLOTS more after them hold each slot's length.
/** Slots filled by the task's thread (counting up, modulo 2^32). */
const HEAD = 0;
/** Slots written by the thread. */
const TAIL = 1;
/**
 * Bumped by the task's thread after every change it makes: the thread sleeps on it and so never
 * misses a change made between its last look and its sleep.
 */
const SEQ = 2;
const STATE = 3;
const DONE = 4;
const STARTED = 5;
const LENGTHS = 8;
// STATE values (0 while running)
const FINISH = 1;
const ABORT = 2;
// DONE values (0 while running)
const OK = 1;
const FAILED = 2;
const ABORTED = 3;

// Plain CommonJS from a string: the thread needs only Node's own modules, so no loader to start.
const WORKER = `
${LOWER_THREAD_PRIORITY_SOURCE}
const { workerData } = require('node:worker_threads');
const { writeSync, fsyncSync, fdatasyncSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { fd, ring: ringBuffer, ctl: ctlBuffer, port, countNamespaces } = workerData;
const ctl = new Int32Array(ctlBuffer);
const ring = Buffer.from(ringBuffer);
const hash = createHash('sha256');
const tally = countNamespaces ? (${NAMESPACE_TALLY_SOURCE})() : null;
let bytes = 0;
let unsynced = 0;
let tail = 0;
Atomics.store(ctl, ${STARTED}, 1);
Atomics.notify(ctl, ${STARTED});
try {
  for (;;) {
    const seq = Atomics.load(ctl, ${SEQ});
    // The state before the head: a FINISH seen here means the head read next is the last one.
    const state = Atomics.load(ctl, ${STATE});
    if (state === ${ABORT}) {
      Atomics.store(ctl, ${DONE}, ${ABORTED});
      break;
    }
    if (Atomics.load(ctl, ${HEAD}) !== tail) {
      const slot = tail & ${SLOTS - 1};
      const view = ring.subarray(slot * ${SLOT_BYTES}, slot * ${SLOT_BYTES} + Atomics.load(ctl, ${LENGTHS} + slot));
      for (let off = 0; off < view.length; ) off += writeSync(fd, view, off);
      hash.update(view);
      if (tally) tally.push(view);
      bytes += view.length;
      unsynced += view.length;
      tail = (tail + 1) | 0;
      Atomics.store(ctl, ${TAIL}, tail);
      Atomics.notify(ctl, ${TAIL});
      if (unsynced >= ${SYNC_EVERY}) {
        fdatasyncSync(fd);
        unsynced = 0;
      }
      continue;
    }
    if (state === ${FINISH}) {
      fsyncSync(fd);
      port.postMessage({ bytes, sha256: hash.digest('hex'), sets: tally ? tally.sets() : [] });
      Atomics.store(ctl, ${DONE}, ${OK});
      break;
    }
    Atomics.wait(ctl, ${SEQ}, seq);
  }
} catch (err) {
  port.postMessage({ error: String((err && err.message) || err), code: err && err.code });
  Atomics.store(ctl, ${DONE}, ${FAILED});
}
Atomics.notify(ctl, ${DONE});
Atomics.notify(ctl, ${TAIL});
port.close();
`;

/**
 * The ring of a thread that has ended, kept for the next large file: shared memory goes back only
 * when a garbage collection finds it unused, so a new ring per file would hold another 16 MiB
 * until then. One is kept (files are written one or two at a time on a thread).
 */
let spareRing: Buffer | undefined;

export interface SinkThreadResult {
  bytes: number;
  sha256: string;
  sets: NamespaceSets;
}

/**
 * A thread writing one open file (its descriptor stays the caller's to close, after `finish` or
 * `abandon`). The caller fills the slot `take` gives and hands it over with `give`.
 */
export class SinkThread {
  private readonly ctl = new Int32Array(new SharedArrayBuffer((LENGTHS + SLOTS) * Int32Array.BYTES_PER_ELEMENT));
  private readonly ring: Buffer;
  private readonly port: MessagePort;
  private readonly startedAt = performance.now();
  private head = 0;
  private released = false;

  constructor(fd: number, countNamespaces: boolean) {
    this.ring = spareRing ?? Buffer.from(new SharedArrayBuffer(SLOTS * SLOT_BYTES));
    spareRing = undefined;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const worker = new Worker(WORKER, {
      eval: true,
      // Node's own modules only: no loader flags of this process (tsx) to start in the thread.
      execArgv: [],
      workerData: { fd, ring: this.ring.buffer, ctl: this.ctl.buffer, port: port2, countNamespaces },
      transferList: [port2],
    });
    worker.unref();
    // A thread that failed to start reports here only if the event loop turns: `waitOn` times out instead.
    worker.on('error', () => {});
  }

  /** The next slot to fill (SLOT_BYTES long), once the thread has written what it held before. */
  take(): Buffer {
    const since = performance.now();
    for (;;) {
      const tail = Atomics.load(this.ctl, TAIL);
      if ((this.head - tail) >>> 0 < SLOTS) break;
      this.signal();
      this.waitOn(TAIL, tail, since);
    }
    const slot = this.head & (SLOTS - 1);
    return this.ring.subarray(slot * SLOT_BYTES, (slot + 1) * SLOT_BYTES);
  }

  /** Hands the slot `take` gave to the thread, its first `bytes` bytes filled. */
  give(bytes: number): void {
    Atomics.store(this.ctl, LENGTHS + (this.head & (SLOTS - 1)), bytes);
    this.head = (this.head + 1) | 0;
    Atomics.store(this.ctl, HEAD, this.head);
    Atomics.add(this.ctl, SEQ, 1);
    if ((this.head - Atomics.load(this.ctl, TAIL)) >>> 0 >= WAKE_SLOTS) Atomics.notify(this.ctl, SEQ);
  }

  /** Waits for the thread to write, hash and fsync everything, and returns what it found. */
  finish(): SinkThreadResult {
    Atomics.store(this.ctl, STATE, FINISH);
    this.signal();
    // Progress is a slot written: what is left may be many slots (a thread that slept) and an fsync.
    let since = performance.now();
    let tail = Atomics.load(this.ctl, TAIL);
    while (Atomics.load(this.ctl, DONE) === 0) {
      if (Atomics.load(this.ctl, TAIL) !== tail) {
        tail = Atomics.load(this.ctl, TAIL);
        since = performance.now();
      }
      this.waitOn(DONE, 0, since);
    }
    this.ended();
    return this.message() as SinkThreadResult;
  }

  /**
   * Stops the thread without finishing the file. False if it did not answer in time (a disk
   * that hangs): then the descriptor must stay open, as the thread may still write to it.
   */
  abandon(): boolean {
    Atomics.store(this.ctl, STATE, ABORT);
    this.signal();
    const deadline = performance.now() + 10_000;
    while (Atomics.load(this.ctl, DONE) === 0) {
      if (performance.now() > deadline) return false;
      Atomics.wait(this.ctl, DONE, 0, 100);
    }
    this.ended();
    return true;
  }

  /** The thread has stopped using its ring (it set DONE): the next thread may take it. */
  private ended(): void {
    if (this.released) return;
    this.released = true;
    spareRing ??= this.ring;
  }

  private signal(): void {
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
  }

  /**
   * Waits (a second at most) until ctl[index] is no longer `value`; throws what the thread
   * reported if it failed, or if it has not started, or made no progress since `since`.
   */
  private waitOn(index: number, value: number, since: number): void {
    this.throwIfFailed();
    Atomics.wait(this.ctl, index, value, 1000);
    this.throwIfFailed();
    if (Atomics.load(this.ctl, index) !== value) return;
    if (Atomics.load(this.ctl, STARTED) === 0 && performance.now() - this.startedAt > START_TIMEOUT_MS) {
      Atomics.store(this.ctl, STATE, ABORT);
      throw new Error('the export file thread did not start');
    }
    if (performance.now() - since > STALL_TIMEOUT_MS) throw new Error('the export file thread stopped answering');
  }

  private throwIfFailed(): void {
    if (Atomics.load(this.ctl, DONE) !== FAILED) return;
    this.ended();
    this.message();
  }

  /** The thread's last word: its result, or its error thrown here. */
  private message(): unknown {
    const reply = receiveMessageOnPort(this.port)?.message as
      | (SinkThreadResult & { error?: undefined })
      | { error: string; code?: string }
      | undefined;
    this.port.close();
    if (!reply) throw new Error('the export file thread ended without an answer');
    if (reply.error !== undefined) throw Object.assign(new Error(reply.error), reply.code ? { code: reply.code } : {});
    return reply;
  }
}
