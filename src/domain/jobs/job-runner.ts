import { AsyncResource } from 'node:async_hooks';
import { isBusy, withoutBusyWait } from '../../db/busy.js';
import { preparedOn, statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { writeInTurn, writeUnit } from '../../db/unit.js';
import { conflict } from '../errors.js';
import { topics } from '../events.js';
import { Cancelled } from './cancelled.js';
import { failureFields } from './job-failure.js';
import { type RegisteredJobKind, registeredJobKinds } from './job-kind.js';
import { type JobPrepare, type JobQueue, queueJob } from './job-queue.js';
import type { JobServices } from './job-services.js';
import { ToldJobStates } from './job-state-order.js';
import { type Job, type JobOf, jobById, type NewJobOptions, updateJob, updateJobIn } from './job-store.js';
import { isTerminal, JOB_STATUSES, type TypedJobKind } from './job-types.js';

/** What `enqueue`'s prepare may do besides validating and returning the input. */
export type { JobChain } from './job-queue.js';

const TERMINAL_SQL = JOB_STATUSES.filter(isTerminal)
  .map((s) => `'${s}'`)
  .join(', ');

const q = statements('job-runner', {
  /** At start: what a crash left PROCESSING is queued again (params: now). */
  requeueProcessing: {
    sqlite: `UPDATE jobs SET status = 'QUEUED', updated_at = ? WHERE status = 'PROCESSING'`,
    postgres: `UPDATE jobs SET status = 'QUEUED', updated_at = $1 WHERE status = 'PROCESSING'`,
  },
  /** At start: what a crash left CANCELLING is CANCELLED (params: now, now). */
  cancelCancelling: {
    sqlite: `UPDATE jobs SET status = 'CANCELLED', finished_at = ?, updated_at = ? WHERE status = 'CANCELLING'`,
    postgres: `UPDATE jobs SET status = 'CANCELLED', finished_at = $1, updated_at = $2 WHERE status = 'CANCELLING'`,
  },
  /** The kinds of the queued jobs, each once (kinds are upper-case ASCII: one order on both). */
  queuedKinds: {
    sqlite: `SELECT kind FROM jobs WHERE status = 'QUEUED' GROUP BY kind ORDER BY kind`,
    postgres: `SELECT kind FROM jobs WHERE status = 'QUEUED' GROUP BY kind ORDER BY kind`,
  },
  /** The oldest queued job of a kind whose `after_job_id` job (if any) has ended. */
  claimable: {
    sqlite: `SELECT id, attempts FROM jobs j WHERE kind = ? AND status = 'QUEUED'
      AND (after_job_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs w WHERE w.id = j.after_job_id AND w.status NOT IN (${TERMINAL_SQL})))
      ORDER BY id LIMIT 1`,
    postgres: `SELECT id, attempts FROM jobs j WHERE kind = $1 AND status = 'QUEUED'
      AND (after_job_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs w WHERE w.id = j.after_job_id AND w.status NOT IN (${TERMINAL_SQL})))
      ORDER BY id LIMIT 1`,
  },
});

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
export class JobRunner implements JobQueue {
  private readonly running = new Map<number, Running>();
  private readonly told = new ToldJobStates();
  private readonly active = new Map<TypedJobKind, number>();
  private watchdog: NodeJS.Timeout | undefined;
  private stopped = false;
  private pumping = false;
  /** A wake-up that came while the runner was claiming: it claims again before it stops. */
  private pumpAgain = false;
  /**
   * Wakes the runner in its own asynchronous context, not its caller's: a job queued inside a
   * unit (a schedule's tick) is claimed after that unit, in units of the runner's own, which
   * are no part of it (db/unit.ts refuses a unit opened with the connection inside another).
   */
  private readonly wake = AsyncResource.bind(() => this.pump());

  constructor(private readonly services: JobServices) {}

  /** Re-queues what a crash left behind and starts taking jobs. */
  async start(): Promise<void> {
    const { conn } = this.services;
    await writeUnit(conn, async (tx) => {
      const now = Date.now();
      await tx.run(q.requeueProcessing, [now]);
      await tx.run(q.cancelCancelling, [now, now]);
    });
    const known = new Set<string>(registeredJobKinds().map((k) => k.kind));
    const unknown = (await conn.all<{ kind: string }>(q.queuedKinds)).filter((r) => !known.has(r.kind));
    // A kind runs once its module is loaded (defineJobKind); queued jobs of a kind nobody loaded would wait silently.
    if (unknown.length > 0) {
      this.services.log.warn({ kinds: unknown.map((r) => r.kind) }, 'queued jobs of kinds no module has defined');
    }
    await this.sweep();
    let ticks = 0;
    this.watchdog = setInterval(() => {
      this.checkTimeouts();
      // Housekeeping in the background: a sweep logs its own failures and never rejects.
      if (++ticks % 60 === 0) void this.sweep();
    }, 1000);
    this.watchdog.unref();
    this.wake();
  }

  /** Stops taking jobs and cancels the running ones (they are re-queued at the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const r of this.running.values()) r.controller.abort('shutdown');
    const deadline = Date.now() + this.services.limits.shutdownGraceMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /**
   * Tells subscribers a job's state, unless a newer one was told already (job-state-order.ts):
   * every subscriber of a job sees its progress rise and its states in the order they were
   * reached, whatever order the writes that made them came back in.
   */
  private publish(job: Job): void {
    if (!this.told.tell(job)) return;
    this.services.bus.publish(topics.job(job.id), job);
    this.services.bus.publish(topics.sandboxJobs(job.sandboxId), job);
  }

  /**
   * Creates a QUEUED job and wakes the runner. `prepare` validates and returns the job's input
   * inside the same unit as the insert (reading through its `tx`), so what it checked still
   * holds when the job exists; a `DomainError` it throws leaves nothing behind. It may also
   * queue a job to run first (`chain.first`), in the same unit. `conn` is the caller's: the
   * connection, or the handle of the unit it runs in (a schedule's tick), of which the job's
   * unit is then a savepoint.
   */
  async enqueue<K extends TypedJobKind>(
    conn: Store,
    sandboxId: number,
    kind: K,
    prepare: JobPrepare<K>,
    options: NewJobOptions = {},
  ): Promise<JobOf<K>> {
    const { job, first } = await queueJob(conn, sandboxId, kind, prepare, options);
    if (first) this.publish(first);
    this.publish(job);
    this.wake();
    return job;
  }

  /**
   * Cancels a job: a queued one at once, a running one within a second. CONFLICT once it has
   * finished. The job queued to run first for it (`afterJobId`), if still going, is cancelled too.
   */
  async cancel(id: number): Promise<Job> {
    const { conn } = this.services;
    const changed = await writeUnit(conn, async (tx) => {
      const stop = (job: Job): Job | Promise<Job> => {
        if (job.status === 'CANCELLING') return job;
        if (job.status === 'QUEUED') return updateJob(tx, job.id, { status: 'CANCELLED', finishedAt: Date.now() });
        return updateJob(tx, job.id, { status: 'CANCELLING' });
      };
      const current = (await jobById(tx, id))!;
      if (isTerminal(current.status)) {
        throw conflict(`The job has already finished (${current.status}); there is nothing to cancel`, {
          status: current.status,
        });
      }
      const first = current.afterJobId == null ? undefined : await jobById(tx, current.afterJobId);
      return [await stop(current), ...(first && !isTerminal(first.status) ? [await stop(first)] : [])];
    });
    for (const job of changed) {
      this.running.get(job.id)?.controller.abort('cancelled');
      this.publish(job);
    }
    // A job waiting for the one cancelled can now be claimed (and fail).
    this.wake();
    return changed[0]!;
  }

  private async sweep(): Promise<void> {
    for (const kind of registeredJobKinds()) {
      try {
        // A sweep's units do not wait for a write lock another process holds (db/busy.ts): the
        // sweep is skipped until the next round.
        await kind.sweep(this.services, Date.now());
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

  private async claimQueued(): Promise<void> {
    if (this.stopped) return;
    if (this.pumping) {
      // Claiming is under way: a job queued meanwhile may have come after its kind's claim.
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        for (const kind of registeredJobKinds()) {
          while (!this.stopped && (this.active.get(kind.kind) ?? 0) < kind.concurrency) {
            const next = await this.claim(kind.kind);
            if (!next) break;
            this.active.set(kind.kind, (this.active.get(kind.kind) ?? 0) + 1);
            void this.execute(kind, next).finally(() => {
              this.active.set(kind.kind, (this.active.get(kind.kind) ?? 1) - 1);
              setImmediate(() => this.pump());
            });
          }
        }
      } while (this.pumpAgain && !this.stopped);
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Takes the oldest queued job of a kind that waits for nothing still going, and marks it
   * PROCESSING, atomically.
   */
  private claim(kind: TypedJobKind): Promise<Job | undefined> {
    const { conn } = this.services;
    return writeUnit(conn, (tx) => {
      // Read synchronously (this runner claims on SQLite; on PostgreSQL the cluster jobs claim
      // with FOR UPDATE SKIP LOCKED, src/domain/cluster/): a claim that finds nothing ends its unit in the same turn. Every wake tries
      // every kind, and units held open across turns made them queue behind one another and the
      // requests, and wait on a write lock another process holds (test/domain/schedules/restart).
      const row = preparedOn(tx.sqlite, q.claimable).get(kind) as { id: number; attempts: number } | undefined;
      if (!row) return undefined;
      const now = Date.now();
      return updateJob(tx, row.id, {
        status: 'PROCESSING',
        startedAt: now,
        finishedAt: null,
        error: null,
        progressDone: 0,
        attempts: row.attempts + 1,
      });
    });
  }

  /**
   * The evaluation instant of a job: the one pinned at its first start, else the one asked for,
   * else now. Pinned in the input, so a re-run after a crash evaluates at the same instant.
   */
  private async pinNow(job: Job): Promise<{ job: Job; now: number }> {
    const input = job.input;
    if (input.now !== undefined) return { job, now: input.now };
    const now = input.at ?? job.startedAt ?? Date.now();
    return { job: await updateJob(this.services.conn, job.id, { input: { ...input, now } }), now };
  }

  /** Why a job cannot run because the job queued first for it did not succeed; undefined when it may run. */
  private async unmetPrerequisite(job: Job): Promise<string | undefined> {
    if (job.afterJobId == null) return undefined;
    const first = await jobById(this.services.conn, job.afterJobId);
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
    type Report = ReturnType<RegisteredJobKind['readProgress']>;
    // One progress write at a time. A write that meets the gate held by a worker (the ingest
    // thread's, the job's own final one) waits for it, and the gate lets a later section that
    // finds it free go first; two writes under way at once could then land, and be told, in the
    // reverse order: progress going back (the subs bench saw it). A report that comes while a
    // write is under way waits for it, and a newer one replaces it: it says more.
    let writing = false;
    let waiting: Report | undefined;
    const write = async ({ done, total, result }: Report): Promise<void> => {
      let updated: Job | undefined;
      try {
        // On the main thread: a report that finds the task's write lock taken is dropped rather
        // than waited for (db/busy.ts); the next report, or the finish itself, says more. Its one
        // statement waits for a unit another request has open rather than land in it (db/unit.ts).
        updated = await writeInTurn(conn, () =>
          withoutBusyWait(conn, () =>
            updateJobIn(conn, claimed.id, ['PROCESSING', 'CANCELLING'], {
              progressDone: done,
              progressTotal: total,
              ...(result !== undefined ? { result } : {}),
            }),
          ),
        );
      } catch (err) {
        // It must not take the process down either (this runs in a worker's message handler).
        if (isBusy(err)) return;
        throw err;
      }
      if (updated) this.publish(updated);
    };
    const writeInOrder = async (first: Report): Promise<void> => {
      writing = true;
      try {
        for (let report: Report | undefined = first; report; report = waiting) {
          waiting = undefined;
          await write(report);
        }
      } finally {
        writing = false;
      }
    };
    const progress = (payload: unknown): void => {
      const report = kind.readProgress(payload);
      state.lastProgress = Date.now();
      // Persist and publish at most every 50 ms: well within "every 250 ms", cheap enough for tight loops.
      if (state.lastProgress - lastPublished < 50 && report.result === undefined && report.done !== report.total)
        return;
      lastPublished = state.lastProgress;
      if (writing) waiting = report;
      else void writeInOrder(report);
    };
    try {
      const unmet = await this.unmetPrerequisite(claimed);
      if (unmet) {
        this.publish(await updateJob(conn, claimed.id, { status: 'FAILED', error: unmet, finishedAt: Date.now() }));
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
        // Written (its statement runs in the call, unless a write is under way) and published as
        // it comes; nothing waits for it.
        progress,
        controller.signal,
      );
      // The task finished the job in its own transaction.
      this.publish((await jobById(conn, job.id))!);
    } catch (err) {
      const reason = controller.signal.reason;
      await conn.writeGate.run(() => this.ended(claimed, kind, reason, err));
    } finally {
      this.running.delete(claimed.id);
    }
  }

  /** Records how a job that did not finish itself ended: left for the next start, CANCELLED or FAILED. */
  private async ended(claimed: Job, kind: RegisteredJobKind, reason: unknown, err: unknown): Promise<void> {
    const { conn, log } = this.services;
    if (reason === 'shutdown') {
      // Left PROCESSING on purpose: the next start re-queues it.
      log.info({ jobId: claimed.id }, 'job interrupted by shutdown');
    } else if (err instanceof Cancelled || reason === 'cancelled') {
      this.publish(await updateJob(conn, claimed.id, { status: 'CANCELLED', finishedAt: Date.now() }));
    } else {
      const failure =
        reason === 'timeout'
          ? { error: `No progress for ${Math.round(kind.timeoutMs / 1000)} s; the job was stopped` }
          : failureFields(err);
      if (reason !== 'timeout') log.error({ err, jobId: claimed.id }, 'job failed');
      this.publish(await updateJob(conn, claimed.id, { status: 'FAILED', ...failure, finishedAt: Date.now() }));
    }
  }
}
