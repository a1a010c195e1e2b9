import { and, eq } from 'drizzle-orm';
import { jobs } from '../../db/schema.js';
import type { App } from '../app.js';
import { conflict } from '../errors.js';
import { topics } from '../events.js';
import { isTerminal, type Job, type JobKind, jobById, updateJob, updateJobIn } from './job-store.js';

/** What a running job can do: report progress and notice cancellation. */
export interface JobContext {
  job: Job;
  app: JobServices;
  /** Aborted on cancel (reason "cancelled") or when the job stops making progress (reason "timeout"). */
  signal: AbortSignal;
  /** Reports progress; `extra` is merged into the job's result (e.g. a running estimate). */
  progress(done: number, total?: number | null, extra?: Record<string, unknown>): void;
}

/**
 * One kind of job. `run` does the work and returns the result to store, or `{ finalized: true }`
 * when it already wrote the job's terminal state itself (in the same transaction as its
 * output, so a crash can never leave results without a finished job or the reverse).
 */
export interface JobHandler {
  kind: JobKind;
  /** Fail the job when it reports no progress for this long. */
  timeoutMs: number;
  concurrency?: number;
  run(ctx: JobContext): Promise<{ result: Record<string, unknown> } | { finalized: true }>;
  /** Housekeeping the runner calls at start and every minute (e.g. purging expired previews). */
  sweep?(app: JobServices, now: number): void;
}

/** What the runner and its jobs use: every service but the runner itself. */
export type JobServices = Omit<App, 'jobs'>;

export class JobCancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'JobCancelled';
  }
}

interface Running {
  controller: AbortController;
  lastProgress: number;
}

/**
 * The one runner for every job kind (docs/domain.md "Jobs"): persisted jobs, taken in order per
 * kind with a concurrency limit, progress published at least every 250 ms of work, cancel,
 * a no-progress timeout, and recovery at start (jobs a crash left PROCESSING run again from
 * scratch; their partial work was never visible).
 */
export class JobRunner {
  private readonly handlers = new Map<JobKind, JobHandler>();
  private readonly running = new Map<number, Running>();
  private readonly active = new Map<JobKind, number>();
  private watchdog: NodeJS.Timeout | undefined;
  private stopped = false;
  private pumping = false;

  constructor(private readonly app: JobServices) {}

  register(handler: JobHandler): void {
    this.handlers.set(handler.kind, handler);
  }

  /** Re-queues what a crash left behind and starts taking jobs. */
  start(): void {
    const { conn } = this.app;
    conn.sqlite
      .transaction(() => {
        const now = Date.now();
        conn.db.update(jobs).set({ status: 'QUEUED', updatedAt: now }).where(eq(jobs.status, 'PROCESSING')).run();
        conn.db
          .update(jobs)
          .set({ status: 'CANCELLED', finishedAt: now, updatedAt: now })
          .where(eq(jobs.status, 'CANCELLING'))
          .run();
      })
      .immediate();
    this.sweep();
    let ticks = 0;
    this.watchdog = setInterval(() => {
      this.checkTimeouts();
      if (++ticks % 60 === 0) this.sweep();
    }, 1000);
    this.watchdog.unref();
    this.pump();
  }

  /** Stops taking jobs and cancels the running ones (they are re-queued at the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const r of this.running.values()) r.controller.abort('shutdown');
    const deadline = Date.now() + this.app.limits.shutdownGraceMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  publish(job: Job): void {
    this.app.bus.publish(topics.job(job.id), job);
    this.app.bus.publish(topics.sandboxJobs(job.sandboxId), job);
  }

  /** Announces a newly inserted job and wakes the runner. */
  enqueued(job: Job): void {
    this.publish(job);
    this.pump();
  }

  /** Cancels a job: a queued one at once, a running one within a second. CONFLICT once it has finished. */
  cancel(id: number): Job {
    const { conn } = this.app;
    const job = conn.sqlite
      .transaction(() => {
        const current = jobById(conn, id)!;
        if (isTerminal(current.status)) {
          throw conflict(`The job has already finished (${current.status}); there is nothing to cancel`, {
            status: current.status,
          });
        }
        if (current.status === 'CANCELLING') return current;
        if (current.status === 'QUEUED') return updateJob(conn, id, { status: 'CANCELLED', finishedAt: Date.now() });
        return updateJob(conn, id, { status: 'CANCELLING' });
      })
      .immediate();
    this.running.get(id)?.controller.abort('cancelled');
    this.publish(job);
    return job;
  }

  private sweep(): void {
    for (const handler of this.handlers.values()) {
      try {
        handler.sweep?.(this.app, Date.now());
      } catch (err) {
        this.app.log.error({ err, kind: handler.kind }, 'job sweep failed');
      }
    }
  }

  private checkTimeouts(): void {
    const now = Date.now();
    for (const [id, r] of this.running) {
      const job = jobById(this.app.conn, id);
      const handler = job && this.handlers.get(job.kind);
      if (handler && now - r.lastProgress > handler.timeoutMs) r.controller.abort('timeout');
    }
  }

  private pump(): void {
    if (this.stopped || this.pumping) return;
    this.pumping = true;
    try {
      for (const handler of this.handlers.values()) {
        const limit = handler.concurrency ?? 1;
        while ((this.active.get(handler.kind) ?? 0) < limit) {
          const next = this.claim(handler.kind);
          if (!next) break;
          this.active.set(handler.kind, (this.active.get(handler.kind) ?? 0) + 1);
          void this.execute(handler, next).finally(() => {
            this.active.set(handler.kind, (this.active.get(handler.kind) ?? 1) - 1);
            setImmediate(() => this.pump());
          });
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Takes the oldest queued job of a kind and marks it PROCESSING, atomically. */
  private claim(kind: JobKind): Job | undefined {
    const { conn } = this.app;
    return conn.sqlite
      .transaction(() => {
        const row = conn.db
          .select()
          .from(jobs)
          .where(and(eq(jobs.kind, kind), eq(jobs.status, 'QUEUED')))
          .orderBy(jobs.id)
          .limit(1)
          .get();
        if (!row) return undefined;
        const now = Date.now();
        return updateJob(conn, row.id, {
          status: 'PROCESSING',
          startedAt: now,
          finishedAt: null,
          error: null,
          progressDone: 0,
          attempts: row.attempts + 1,
        });
      })
      .immediate();
  }

  private async execute(handler: JobHandler, job: Job): Promise<void> {
    const { conn, log } = this.app;
    const controller = new AbortController();
    const state: Running = { controller, lastProgress: Date.now() };
    this.running.set(job.id, state);
    this.publish(job);
    let lastPublished = 0;
    let progressResult: Record<string, unknown> = {};
    const ctx: JobContext = {
      job,
      app: this.app,
      signal: controller.signal,
      progress: (done, total, extra) => {
        state.lastProgress = Date.now();
        if (extra) progressResult = { ...progressResult, ...extra };
        // Persist and publish at most every 50 ms: well within "every 250 ms", cheap enough for tight loops.
        if (state.lastProgress - lastPublished < 50 && !extra && done !== total) return;
        lastPublished = state.lastProgress;
        const updated = updateJobIn(conn, job.id, ['PROCESSING', 'CANCELLING'], {
          progressDone: done,
          ...(total !== undefined ? { progressTotal: total } : {}),
          ...(extra ? { result: JSON.stringify({ ...(job.result ?? {}), ...progressResult }) } : {}),
        });
        if (updated) this.publish(updated);
      },
    };
    try {
      const outcome = await handler.run(ctx);
      const finished =
        'finalized' in outcome
          ? jobById(conn, job.id)!
          : finishUnlessCancelled(this.app, job.id, { status: 'SUCCEEDED', result: JSON.stringify(outcome.result) });
      this.publish(finished);
    } catch (err) {
      const reason = controller.signal.reason;
      const cancelled = err instanceof JobCancelled || reason === 'cancelled';
      if (reason === 'shutdown') {
        // Left PROCESSING on purpose: the next start re-queues it.
        log.info({ jobId: job.id }, 'job interrupted by shutdown');
      } else if (cancelled) {
        this.publish(updateJob(conn, job.id, { status: 'CANCELLED', finishedAt: Date.now() }));
      } else {
        const message =
          reason === 'timeout'
            ? `No progress for ${Math.round(handler.timeoutMs / 1000)} s; the job was stopped`
            : err instanceof Error
              ? err.message
              : String(err);
        if (reason !== 'timeout') log.error({ err, jobId: job.id }, 'job failed');
        this.publish(updateJob(conn, job.id, { status: 'FAILED', error: message, finishedAt: Date.now() }));
      }
    } finally {
      this.running.delete(job.id);
    }
  }
}

/** Marks a job finished unless a cancel got there first (then it is CANCELLED). */
export function finishUnlessCancelled(
  app: JobServices,
  id: number,
  set: { status: 'SUCCEEDED' | 'FAILED'; result?: string; error?: string },
): Job {
  const { conn } = app;
  return conn.sqlite
    .transaction(() => {
      const current = jobById(conn, id)!;
      const now = Date.now();
      if (current.status === 'CANCELLING') return updateJob(conn, id, { status: 'CANCELLED', finishedAt: now });
      return updateJob(conn, id, {
        ...set,
        finishedAt: now,
        progressDone: current.progressTotal ?? current.progressDone,
      });
    })
    .immediate();
}
