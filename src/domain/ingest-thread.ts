/**
 * Ingest writes on a thread of their own (the main thread's side; ingest-worker.ts is the
 * thread's). On one event loop a streaming ingest's transaction — event rows, the streaming
 * step, membership writes, the commit — was over half of the main thread's time under load, and
 * every request, subscriber delivery and response waited behind it (bench `stream`). Here the
 * main thread parses, validates the GraphQL and answers, while the thread writes the previous
 * group; changes reach the event bus from the thread, then the group's reply.
 *
 * The thread has its own connection, so what the main thread writes reaches it as any other
 * connection's commit does (`data_version`: its windows, identities and catalogues are dropped
 * and read again), and it takes turns with the other writers through the write gate.
 */
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { IngestLimits } from '../config.js';
import type { Connection } from '../db/index.js';
import { type EventBus, topics } from './events.js';
import type { FromIngestThread, IngestThreadData, PackedPublish, ToIngestThread } from './ingest-worker.js';
import {
  type GroupReply,
  type IngestWrite,
  type IngestWriter,
  type PreparedWrite,
  prepareGroup,
  receiveReply,
} from './ingest-writer.js';
import { startTypeScriptWorker } from './jobs/worker-thread.js';
import { unpackChanges } from './membership-change-packing.js';
import { countStreamingEvaluations } from './streaming.js';
import { countStreamingWindowReads } from './streaming-window.js';

const workerModule = new URL('./ingest-worker.ts', import.meta.url).href;

export class ThreadIngestWriter implements IngestWriter {
  /**
   * The next group waits on the thread while it writes one: the thread goes from one to the next
   * without waiting for this thread to answer, publish and send (bench `stream`: it sat idle a
   * quarter of the time at one group in flight).
   */
  readonly depth = 2;
  /**
   * A change waits for its whole group: from the group's start to its commit took p50 8 / p99
   * 26 ms at 200 events (bench `stream`, 8 connections, session 23), most of the p99 of 25 ms
   * allowed from ingest to subscriber; at 100, p50 4.6 / p99 14. Smaller groups share fewer
   * pages per commit (3.8 an event against 3.0 at 200), which the larger log restart threshold
   * (db/checkpointer.ts) pays back.
   */
  readonly groupEvents = 100;
  private worker: Worker | undefined;
  private nextId = 1;
  /**
   * Moves on when a group comes back busy: the thread refuses, unwritten, the groups sent before
   * this thread heard of it (ingest-worker.ts), so none is written ahead of the busy one.
   */
  private epoch = 0;
  private readonly pending = new Map<
    number,
    { epoch: number; resolve(reply: GroupReply): void; reject(error: Error): void }
  >();
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      conn: Connection;
      bus: EventBus;
      limits: IngestLimits;
      sweepMs: number;
      windowProfiles?: number;
      log: Logger;
    },
  ) {}

  /** The thread, started on first use, and again after one that stopped. */
  private thread(): Worker {
    if (this.worker) return this.worker;
    const { conn, limits, sweepMs, windowProfiles, log } = this.deps;
    const data: IngestThreadData = {
      file: conn.sqlite.name,
      writeGate: conn.writeGate.buffer,
      limits,
      sweepMs,
      windowProfiles,
      logLevel: log.level,
      autocheckpointPages: conn.sqlite.pragma('wal_autocheckpoint', { simple: true }) as number,
    };
    const worker = startTypeScriptWorker(workerModule, data);
    worker.unref();
    const publish = (published: readonly PackedPublish[]) => {
      for (const { sandboxId, changes } of published) {
        this.deps.bus.publishAll(topics.memberships(sandboxId), unpackChanges(sandboxId, changes));
      }
    };
    worker.on('message', (message: FromIngestThread) => {
      if (message.type === 'publish') return publish(message.published);
      if (message.type !== 'reply') return;
      publish(message.published);
      const { evaluations, windowHits, windowMisses } = message.counts;
      countStreamingEvaluations(evaluations);
      countStreamingWindowReads(windowHits, windowMisses);
      const request = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (!request) return;
      if (message.reply.busy) this.epoch = Math.max(this.epoch, request.epoch + 1);
      request.resolve(receiveReply(message.reply));
    });
    const { threadId } = worker;
    const fail = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // A thread stopped inside its transaction must not keep the gate.
      conn.writeGate.releaseHeldBy(threadId);
      for (const [id, request] of this.pending) {
        this.pending.delete(id);
        request.reject(err);
      }
      if (this.stopped !== undefined) return;
      log.error({ err }, 'ingest thread stopped; starting another');
      // Its sweep of expired members goes with it: a new thread a second later, unless an ingest
      // has started one by then (a thread that keeps failing is retried at that pace, not faster).
      setTimeout(() => {
        if (this.stopped === undefined && !this.worker) this.thread();
      }, 1_000).unref();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`ingest thread stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }

  write(group: IngestWrite[]): Promise<GroupReply> {
    if (this.stopped !== undefined)
      return Promise.reject(new Error('ingestion has stopped (the server is shutting down)'));
    const id = this.nextId++;
    const worker = this.thread();
    const epoch = this.epoch;
    // Checked and encoded here, off the one writer (event-ingest.ts, `PreparedEvent`).
    let prepared: PreparedWrite[];
    try {
      prepared = prepareGroup(this.deps.conn, group, this.deps.limits);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { epoch, resolve, reject });
      worker.postMessage({ type: 'write', id, epoch, group: prepared } satisfies ToIngestThread);
    });
  }

  /** The thread starts its streaming sweep as it starts; starting it here keeps the sweep's cadence from the start. */
  start(): void {
    this.thread();
  }

  close(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (!worker) return resolve();
      // Unref'd, the thread would not keep the process alive until it has stopped: the event
      // loop could run dry first, and the process end with its shutdown half done.
      worker.ref();
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'stop' } satisfies ToIngestThread);
    });
    return this.stopped;
  }
}
