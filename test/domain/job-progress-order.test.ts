/**
 * A job's progress as subscribers hear it never goes back (docs/api.md "Subscriptions"), though
 * its writes may come back out of order: a progress write that meets the write gate held by a
 * worker thread (the ingest thread, a job's final write) waits for it, and a later report that
 * finds the gate free goes first (db/write-gate.ts). The subs bench saw a job watcher's progress
 * go back that way while profiles were ingested. Here the runner's task is played by the test,
 * and the worker holding the gate by the gate's shared state, so the order is the test's.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { EventBus, topics } from '../../src/domain/events.js';
import { JobRunner } from '../../src/domain/jobs/job-runner.js';
import { finishJobSync, type Job, jobById } from '../../src/domain/jobs/job-store.js';
import type { WorkerLanes } from '../../src/domain/jobs/worker-thread.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { createSegmentJob } from '../../src/domain/segment-jobs/segment-job.js';

/** A worker thread's id as it marks the gate it holds (any id ≥ 1 not this thread's). */
const WORKER = 7;

/** The lane the runner gives the job's task to: the test reports its progress and ends it. */
class PlayedLane {
  private started!: (task: { onProgress: (payload: unknown) => void; end: () => void }) => void;
  readonly task = new Promise<{ onProgress: (payload: unknown) => void; end: () => void }>((resolve) => {
    this.started = resolve;
  });

  constructor(private readonly conn: Connection) {}

  run(
    _lane: string,
    _task: URL,
    _file: string,
    _gate: unknown,
    job: { jobId: number },
    onProgress: (payload: unknown) => void,
  ): Promise<unknown> {
    return new Promise((resolve) => {
      this.started({
        onProgress,
        // As runJobTask does: the SUCCEEDED state with the final progress, in the task's own write.
        end: () => resolve(finishJobSync(this.conn, job.jobId, { metrics: {}, notes: [] }, 100, Date.now())),
      });
    });
  }
}

let runner: JobRunner | undefined;
afterEach(async () => {
  await runner?.stop();
  runner = undefined;
});

async function runningJob() {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const bus = new EventBus();
  const lane = new PlayedLane(conn);
  runner = new JobRunner({
    conn,
    bus,
    log: pino({ level: 'silent' }),
    limits: DEFAULT_LIMITS,
    lanes: lane as unknown as WorkerLanes,
    dataDir: mkdtempSync(join(tmpdir(), 'segql-progress-')),
  });
  await runner.start();
  const job = await createSegmentJob({ conn, jobs: runner }, sandboxId, { all: true });
  const heard: Job[] = [];
  const updates = bus.subscribe<Job>(topics.sandboxJobs(sandboxId));
  const ended = (async () => {
    for await (const { payload } of updates) {
      heard.push(payload);
      if (payload.status === 'SUCCEEDED') return;
    }
  })();
  const task = await lane.task;
  const gate = new Int32Array(conn.writeGate.buffer);
  return {
    conn,
    job,
    task,
    heard,
    ended,
    /** The gate as a worker thread leaves it while it writes, then as it leaves it when done. */
    holdGate: () => Atomics.store(gate, 0, WORKER),
    releaseGate: () => {
      Atomics.store(gate, 0, 0);
      Atomics.notify(gate, 0);
    },
  };
}

/** Past the runner's 50 ms between two progress writes. */
const nextReport = () => new Promise((resolve) => setTimeout(resolve, 60));

describe('a job’s progress as its subscribers hear it', () => {
  it('never goes back when a later report finds the write gate free before an earlier one', async () => {
    const { conn, job, task, heard, ended, holdGate, releaseGate } = await runningJob();
    task.onProgress({ done: 0, total: 100 });
    await nextReport();
    holdGate();
    // Waits for the gate.
    task.onProgress({ done: 10, total: 100 });
    await nextReport();
    releaseGate();
    // In the same turn as the release, before the waiting write is woken: the gate is free.
    task.onProgress({ done: 20, total: 100 });
    await nextReport();
    // The row never goes back either: the waiting report was written first, or not at all.
    expect((await jobById(conn, job.id))?.progressDone).toBe(20);
    task.end();
    await ended;
    const progress = heard.filter((j) => j.status === 'PROCESSING').map((j) => j.progressDone);
    expect(progress.every((done, i) => i === 0 || done >= progress[i - 1]!)).toBe(true);
    expect(progress.at(-1)).toBe(20);
    expect(heard.at(-1)).toMatchObject({ status: 'SUCCEEDED', progressDone: 100 });
  });

  it('writes the newest of the reports that came while a write waited, and only it', async () => {
    const { conn, job, task, heard, ended, holdGate, releaseGate } = await runningJob();
    holdGate();
    task.onProgress({ done: 10, total: 100 });
    for (const done of [20, 30, 40]) {
      await nextReport();
      task.onProgress({ done, total: 100 });
    }
    await nextReport();
    expect((await jobById(conn, job.id))?.progressDone).toBe(0);
    releaseGate();
    const deadline = Date.now() + 5_000;
    while ((await jobById(conn, job.id))?.progressDone !== 40 && Date.now() < deadline) await nextReport();
    task.end();
    await ended;
    expect(heard.map((j) => [j.status, j.progressDone])).toEqual([
      ['PROCESSING', 0],
      ['PROCESSING', 10],
      ['PROCESSING', 40],
      ['SUCCEEDED', 100],
    ]);
  });
});
