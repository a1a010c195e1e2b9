import { and, eq, sql } from 'drizzle-orm';
import { isBusy, withoutBusyWait } from '../../db/busy.js';
import { jobs } from '../../db/schema.js';
import { conflict } from '../errors.js';
import { topics } from '../events.js';
import { Cancelled } from './cancelled.js';
import { type RegisteredJobKind, registeredJobKinds } from './job-kind.js';
import type { JobServices } from './job-services.js';
import { insertJob, type Job, type JobOf, jobById, type NewJobOptions, updateJob, updateJobIn } from './job-store.js';
import { type InputOf, isTerminal, JOB_STATUSES, type TypedJobKind } from './job-types.js';

/** What `enqueue`'s prepare may do besides validating and returning the input. */
export interface JobChain {
  /**
   * Queues a job that must run first, for the job being created (an export's segment job), in
   * the same transaction. The new job is claimed once that one has ended and fails unless it
   * succeeded; cancelling the new job cancels it too. At most one per job.
   */
  first<F extends TypedJobKind>(kind: F, input: InputOf<F>): JobOf<F>;
}

const TERMINAL_SQL = JOB_STATUSES.filter(isTerminal)
  .map((s) => `'${s}'`)
  .join(', ');

interface Running {
  kind: RegisteredJobKind;
  controller: AbortController;
  lastProgress: number;
}

/**
 * The one runner for every job kind (docs/domain.md "Jobs"): persisted jobs, taken in order per
 * kind with a concurrency limit, each run as its kind's task on the kind's worker lane with its
 * `now` pinned, progress published at least every 250 ms of work, cancel, a no-progress
 * timeout, and recovery at start (jobs a crash left PROCESSING run again from scratch; their
 * partial work was never visible). The kinds are those declared with `defineJobKind`.
 */
export class JobRunner {
  private readonly running = new Map<number, Running>();
  private readonly active = new Map<TypedJobKind, number>();
  private watchdog: NodeJS.Timeout | undefined;
  private stopped = false;
  private pumping = false;

  constructor(private readonly services: JobServices) {}

  /** Re-queues what a crash left behind and starts taking jobs. */
  start(): void {
    const { conn } = this.services;
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
    const known = new Set<string>(registeredJobKinds().map((k) => k.kind));
    const unknown = conn.db
      .selectDistinct({ kind: jobs.kind })
      .from(jobs)
      .where(eq(jobs.status, 'QUEUED'))
      .all()
      .filter((r) => !known.has(r.kind));
    // A kind runs once its module is loaded (defineJobKind); queued jobs of a kind nobody loaded would wait silently.
    if (unknown.length > 0) {
      this.services.log.warn({ kinds: unknown.map((r) => r.kind) }, 'queued jobs of kinds no module has defined');
    }
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
    const deadline = Date.now() + this.services.limits.shutdownGraceMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  private publish(job: Job): void {
    this.services.bus.publish(topics.job(job.id), job);
    this.services.bus.publish(topics.sandboxJobs(job.sandboxId), job);
  }

  /**
   * Creates a QUEUED job and wakes the runner. `prepare` validates and returns the job's input
   * inside the same IMMEDIATE transaction as the insert, so what it checked still holds when the
   * job exists; a `DomainError` it throws leaves nothing behind. It may also queue a job to run
   * first (`chain.first`), in the same transaction.
   */
  enqueue<K extends TypedJobKind>(
    sandboxId: number,
    kind: K,
    prepare: (chain: JobChain) => InputOf<K>,
    options: NewJobOptions = {},
  ): JobOf<K> {
    const { conn } = this.services;
    const queued: { first?: Job } = {};
    const chain: JobChain = {
      first: (firstKind, input) => {
        if (queued.first) throw new Error('a job waits for one job at most');
        // Started by the same trigger, but not one of a schedule's runs: the job it runs for is.
        const first = insertJob(conn, sandboxId, firstKind, input, { trigger: options.trigger, now: options.now });
        queued.first = first;
        return first;
      },
    };
    const job = conn.sqlite
      .transaction(() => {
        const input = prepare(chain);
        return insertJob(conn, sandboxId, kind, input, {
          ...options,
          afterJobId: queued.first?.id ?? options.afterJobId,
        });
      })
      .immediate();
    if (queued.first) this.publish(queued.first);
    this.publish(job);
    this.pump();
    return job;
  }

  /**
   * Cancels a job: a queued one at once, a running one within a second. CONFLICT once it has
   * finished. The job queued to run first for it (`afterJobId`), if still going, is cancelled too.
   */
  cancel(id: number): Job {
    const { conn } = this.services;
    const stop = (job: Job): Job => {
      if (job.status === 'CANCELLING') return job;
      if (job.status === 'QUEUED') return updateJob(conn, job.id, { status: 'CANCELLED', finishedAt: Date.now() });
      return updateJob(conn, job.id, { status: 'CANCELLING' });
    };
    const changed = conn.sqlite
      .transaction(() => {
        const current = jobById(conn, id)!;
        if (isTerminal(current.status)) {
          throw conflict(`The job has already finished (${current.status}); there is nothing to cancel`, {
            status: current.status,
          });
        }
        const first = current.afterJobId == null ? undefined : jobById(conn, current.afterJobId);
        return [stop(current), ...(first && !isTerminal(first.status) ? [stop(first)] : [])];
      })
      .immediate();
    for (const job of changed) {
      this.running.get(job.id)?.controller.abort('cancelled');
      this.publish(job);
    }
    // A job waiting for the one cancelled can now be claimed (and fail).
    this.pump();
    return changed[0]!;
  }

  private sweep(): void {
    for (const kind of registeredJobKinds()) {
      try {
        // Skipped, not waited for on the main thread, while a job holds the write lock (db/busy.ts).
        withoutBusyWait(this.services.conn, () => kind.sweep(this.services, Date.now()));
      } catch (err) {
        if (isBusy(err)) continue;
        this.services.log.error({ err, kind: kind.kind }, 'job sweep failed');
      }
    }
  }

  private checkTimeouts(): void {
    const now = Date.now();
    for (const r of this.running.values()) {
      if (now - r.lastProgress > r.kind.timeoutMs) r.controller.abort('timeout');
    }
  }

  private pump(): void {
    // Claims are writes: taken when no job worker is writing its results (db/write-gate.ts).
    void this.services.conn.writeGate.run(() => this.claimQueued());
  }

  private claimQueued(): void {
    if (this.stopped || this.pumping) return;
    this.pumping = true;
    try {
      for (const kind of registeredJobKinds()) {
        while ((this.active.get(kind.kind) ?? 0) < kind.concurrency) {
          const next = this.claim(kind.kind);
          if (!next) break;
          this.active.set(kind.kind, (this.active.get(kind.kind) ?? 0) + 1);
          void this.execute(kind, next).finally(() => {
            this.active.set(kind.kind, (this.active.get(kind.kind) ?? 1) - 1);
            setImmediate(() => this.pump());
          });
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Takes the oldest queued job of a kind that waits for nothing still going, and marks it
   * PROCESSING, atomically.
   */
  private claim(kind: TypedJobKind): Job | undefined {
    const { conn } = this.services;
    return conn.sqlite
      .transaction(() => {
        const row = conn.db
          .select({ id: jobs.id, attempts: jobs.attempts })
          .from(jobs)
          .where(
            and(
              eq(jobs.kind, kind),
              eq(jobs.status, 'QUEUED'),
              sql`(${jobs.afterJobId} IS NULL OR NOT EXISTS (SELECT 1 FROM jobs w WHERE w.id = ${jobs.afterJobId} AND w.status NOT IN (${sql.raw(TERMINAL_SQL)})))`,
            ),
          )
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

  /**
   * The evaluation instant of a job: the one pinned at its first start, else the one asked for,
   * else now. Pinned in the input, so a re-run after a crash evaluates at the same instant.
   */
  private pinNow(job: Job): { job: Job; now: number } {
    const input = job.input;
    if (input.now !== undefined) return { job, now: input.now };
    const now = input.at ?? job.startedAt ?? Date.now();
    return { job: updateJob(this.services.conn, job.id, { input: { ...input, now } }), now };
  }

  /** Why a job cannot run because the job queued first for it did not succeed; undefined when it may run. */
  private unmetPrerequisite(job: Job): string | undefined {
    if (job.afterJobId == null) return undefined;
    const first = jobById(this.services.conn, job.afterJobId);
    if (first?.status === 'SUCCEEDED') return undefined;
    if (!first) return 'The job queued to run first for it was deleted; nothing was done';
    const why = first.error ? `: ${first.error}` : '';
    return `The ${first.kind} job queued to run first for it ended ${first.status}${why}; nothing was done`;
  }

  private async execute(kind: RegisteredJobKind, claimed: Job): Promise<void> {
    const { conn, lanes } = this.services;
    const controller = new AbortController();
    const state: Running = { kind, controller, lastProgress: Date.now() };
    this.running.set(claimed.id, state);
    this.publish(claimed);
    let lastPublished = 0;
    const progress = (payload: unknown) => {
      const { done, total, result } = kind.readProgress(payload);
      state.lastProgress = Date.now();
      // Persist and publish at most every 50 ms: well within "every 250 ms", cheap enough for tight loops.
      if (state.lastProgress - lastPublished < 50 && result === undefined && done !== total) return;
      lastPublished = state.lastProgress;
      let updated: Job | undefined;
      try {
        // On the main thread: a report that finds the task's write lock taken is dropped rather
        // than waited for (db/busy.ts); the next report, or the finish itself, says more.
        updated = withoutBusyWait(conn, () =>
          updateJobIn(conn, claimed.id, ['PROCESSING', 'CANCELLING'], {
            progressDone: done,
            progressTotal: total,
            ...(result !== undefined ? { result } : {}),
          }),
        );
      } catch (err) {
        // It must not take the process down either (this runs in a worker's message handler).
        if (isBusy(err)) return;
        throw err;
      }
      if (updated) this.publish(updated);
    };
    try {
      const unmet = this.unmetPrerequisite(claimed);
      if (unmet) {
        this.publish(updateJob(conn, claimed.id, { status: 'FAILED', error: unmet, finishedAt: Date.now() }));
        return;
      }
      const { job, now } = await conn.writeGate.run(() => this.pinNow(claimed));
      const plan = await kind.plan(job, now, this.services);
      await lanes.run(
        kind.kind,
        kind.task,
        conn.sqlite.name,
        conn.writeGate,
        { jobId: job.id, plan },
        progress,
        controller.signal,
      );
      // The task finished the job in its own transaction.
      this.publish(jobById(conn, job.id)!);
    } catch (err) {
      const reason = controller.signal.reason;
      await conn.writeGate.run(() => this.ended(claimed, kind, reason, err));
    } finally {
      this.running.delete(claimed.id);
    }
  }

  /** Records how a job that did not finish itself ended: left for the next start, CANCELLED or FAILED. */
  private ended(claimed: Job, kind: RegisteredJobKind, reason: unknown, err: unknown): void {
    const { conn, log } = this.services;
    if (reason === 'shutdown') {
      // Left PROCESSING on purpose: the next start re-queues it.
      log.info({ jobId: claimed.id }, 'job interrupted by shutdown');
    } else if (err instanceof Cancelled || reason === 'cancelled') {
      this.publish(updateJob(conn, claimed.id, { status: 'CANCELLED', finishedAt: Date.now() }));
    } else {
      const message =
        reason === 'timeout'
          ? `No progress for ${Math.round(kind.timeoutMs / 1000)} s; the job was stopped`
          : err instanceof Error
            ? err.message
            : String(err);
      if (reason !== 'timeout') log.error({ err, jobId: claimed.id }, 'job failed');
      this.publish(updateJob(conn, claimed.id, { status: 'FAILED', error: message, finishedAt: Date.now() }));
    }
  }
}
