import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { onTestFinished } from 'vitest';
import { DEFAULT_LIMITS } from '../../../src/config.js';
import { openDatabase } from '../../../src/db/index.js';
import { createSegmentDefinition } from '../../../src/domain/definitions.js';
import { EventBus } from '../../../src/domain/events.js';
import { JobRunner } from '../../../src/domain/jobs/job-runner.js';
import { listJobs, updateJob } from '../../../src/domain/jobs/job-store.js';
import type { JobStatus } from '../../../src/domain/jobs/job-types.js';
import { WorkerLanes } from '../../../src/domain/jobs/worker-thread.js';
import { ensureSandbox } from '../../../src/domain/sandboxes.js';
import '../../../src/domain/schedules/batch-segmentation.js';
import { listTicks } from '../../../src/domain/schedules/schedule-ticks.js';
import { Scheduler } from '../../../src/domain/schedules/scheduler.js';
import { ManualClock } from './manual-clock.js';

/**
 * A scheduler over an in-memory database and a hand-moved clock. Its job runner is stopped, so
 * runs stay QUEUED until the test ends them (`finishRuns`): the test decides when a run is over.
 */
export async function scheduleHarness(start: string) {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const clock = new ManualClock(Date.parse(start));
  const bus = new EventBus();
  const log = pino({ level: 'silent' });
  const dataDir = mkdtempSync(join(tmpdir(), 'segql-schedules-'));
  // Each harness made a directory that outlived the run (36 a `npm test`).
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  const jobs = new JobRunner({
    conn,
    bus,
    log,
    limits: DEFAULT_LIMITS,
    lanes: new WorkerLanes(),
    dataDir,
  });
  await jobs.stop();
  const make = () => new Scheduler({ conn, bus, log, jobs, clock, timers: conn });
  let scheduler = make();
  await scheduler.start();
  return {
    conn,
    sandboxId,
    clock,
    bus,
    /** The (stopped) job runner the scheduler queues runs on. */
    jobs,
    get scheduler() {
      return scheduler;
    },
    /** Stops the scheduler, lets `ms` pass with no server, and starts a new one on the same database. */
    async restartAfter(ms: number) {
      scheduler.stop();
      await clock.advance(ms);
      scheduler = make();
      await scheduler.start();
    },
    async definition(name: string, value = 'true') {
      return createSegmentDefinition(conn, sandboxId, {
        name,
        expression: { format: 'PQL_TEXT', value },
        lifecycleState: 'PUBLISHED',
      });
    },
    /** The schedule's ticks, oldest first, as [ISO due time, outcome]. */
    async ticks(scheduleId: number) {
      const all = [];
      let after: string | undefined;
      for (;;) {
        const page = await listTicks(conn, sandboxId, scheduleId, { first: 500, after });
        all.push(...page.items);
        if (!page.hasNextPage) break;
        after = page.cursors.at(-1);
      }
      return all.reverse().map((t) => [new Date(t.dueAt).toISOString(), t.outcome, t.count] as const);
    },
    async runs(scheduleId: number) {
      return (await listJobs(conn, sandboxId, { scheduleId }, { first: 500 })).items.reverse();
    },
    /** Ends every queued run (as the runner would), with `status`. */
    async finishRuns(scheduleId: number, status: JobStatus = 'SUCCEEDED') {
      const queued = await listJobs(conn, sandboxId, { scheduleId, statuses: ['QUEUED'] }, { first: 500 });
      for (const job of queued.items) await updateJob(conn, job.id, { status, finishedAt: clock.now() });
    },
  };
}
