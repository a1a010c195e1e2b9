/**
 * A job's progress as subscribers hear it never goes back (docs/api.md "Subscriptions"), though
 * its writes may come back out of order: a progress write that meets the write gate held by a
 * worker thread (the ingest thread, a job's final write) waits for it, and a later report that
 * finds the gate free goes first (db/write-gate.ts). The subs bench saw a job watcher's progress
 * go back that way while profiles were ingested. Here the runner's task is played by the test,
 * and the worker holding the gate by the gate's shared state, so the order is the test's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { ClusterJobWatcher } from '../../src/domain/cluster/cluster-job-watcher.js';
import { EventBus, topics } from '../../src/domain/events.js';
import { JobRunner } from '../../src/domain/jobs/job-runner.js';
import { isOlderJobState, ToldJobStates } from '../../src/domain/jobs/job-state-order.js';
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
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-progress-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  runner = new JobRunner({
    conn,
    bus,
    log: pino({ level: 'silent' }),
    limits: DEFAULT_LIMITS,
    lanes: lane as unknown as WorkerLanes,
    dataDir,
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

describe('the order of a job’s states', () => {
  const state = (status: Job['status'], attempts: number, progressDone: number) => ({ status, attempts, progressDone });

  it('finds lower progress of the same run older, and any state of an earlier run', () => {
    expect(isOlderJobState(state('PROCESSING', 1, 20), state('PROCESSING', 1, 10))).toBe(true);
    expect(isOlderJobState(state('CANCELLING', 1, 20), state('PROCESSING', 1, 10))).toBe(true);
    expect(isOlderJobState(state('PROCESSING', 2, 0), state('PROCESSING', 1, 90))).toBe(true);
    expect(isOlderJobState(state('PROCESSING', 1, 0), state('QUEUED', 0, 0))).toBe(true);
  });

  it('finds a cancel taken back or a run after its end older', () => {
    expect(isOlderJobState(state('CANCELLING', 1, 20), state('PROCESSING', 1, 20))).toBe(true);
    expect(isOlderJobState(state('SUCCEEDED', 1, 100), state('PROCESSING', 1, 100))).toBe(true);
    expect(isOlderJobState(state('CANCELLED', 0, 0), state('QUEUED', 0, 0))).toBe(true);
  });

  it('lets a run rise, be cancelled, end, requeue after a lost lease and start again', () => {
    expect(isOlderJobState(state('PROCESSING', 1, 10), state('PROCESSING', 1, 10))).toBe(false);
    expect(isOlderJobState(state('PROCESSING', 1, 10), state('PROCESSING', 1, 20))).toBe(false);
    expect(isOlderJobState(state('PROCESSING', 1, 10), state('CANCELLING', 1, 10))).toBe(false);
    expect(isOlderJobState(state('CANCELLING', 1, 10), state('CANCELLED', 1, 10))).toBe(false);
    expect(isOlderJobState(state('PROCESSING', 1, 90), state('QUEUED', 1, 90))).toBe(false);
    expect(isOlderJobState(state('QUEUED', 1, 90), state('PROCESSING', 2, 0))).toBe(false);
    expect(isOlderJobState(state('PROCESSING', 1, 90), state('SUCCEEDED', 1, 100))).toBe(false);
  });

  it('tells each job’s states apart and forgets the oldest jobs past its bound', () => {
    const told = new ToldJobStates(2);
    expect(told.tell({ id: 1, ...state('PROCESSING', 1, 50) })).toBe(true);
    expect(told.tell({ id: 2, ...state('PROCESSING', 1, 5) })).toBe(true);
    expect(told.tell({ id: 1, ...state('PROCESSING', 1, 40) })).toBe(false);
    expect(told.tell({ id: 2, ...state('PROCESSING', 1, 6) })).toBe(true);
    // Job 1 was told longest ago: a third job makes it forgotten, and anything of it is news again.
    expect(told.tell({ id: 3, ...state('QUEUED', 0, 0) })).toBe(true);
    expect(told.tell({ id: 1, ...state('PROCESSING', 1, 40) })).toBe(true);
    expect(told.tell({ id: 2, ...state('PROCESSING', 1, 5) })).toBe(true);
  });
});

describe('the job watcher on PostgreSQL', () => {
  it('tells no state older than the one it told', async () => {
    const conn = openDatabase(':memory:');
    const sandboxId = (await ensureSandbox(conn, 'prod')).id;
    const told: [string, number][] = [];
    const bus = { publishLocal: (topic: string, job: unknown) => told.push([topic, (job as Job).progressDone]) };
    // Never started: what a notification brings and what its own queue tells both go through `announce`.
    const watcher = new ClusterJobWatcher({
      url: 'postgres://unused',
      store: conn,
      bus,
      log: pino({ level: 'silent' }),
    });
    const job = (status: Job['status'], attempts: number, progressDone: number) =>
      ({ id: 9, sandboxId, kind: 'SEGMENT', status, attempts, progressDone, progressTotal: 100 }) as Job;
    // A row read after its notification (20), then the row the next notification carried (10).
    watcher.announce(job('PROCESSING', 1, 20));
    watcher.announce(job('PROCESSING', 1, 10));
    // A cancel its queue told at once, then the notification of a renewal before it.
    watcher.announce(job('CANCELLING', 1, 30));
    watcher.announce(job('PROCESSING', 1, 25));
    watcher.announce(job('CANCELLED', 1, 30));
    expect(told.filter(([topic]) => topic === topics.job(9))).toEqual([
      [topics.job(9), 20],
      [topics.job(9), 30],
      [topics.job(9), 30],
    ]);
    expect(told.filter(([topic]) => topic === topics.sandboxJobs(sandboxId))).toHaveLength(3);
  });
});
