import type { Logger } from 'pino';
import { isBusy } from '../../db/busy.js';
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { type UnitOf, writeUnit } from '../../db/unit.js';
import type { WriteGate } from '../../db/write-gate.js';
import { conflict } from '../errors.js';
import { type EventBus, topics } from '../events.js';
import { encodeGlobalId } from '../ids.js';
import type { JobQueue } from '../jobs/job-queue.js';
import type { Job } from '../jobs/job-store.js';
import { isTerminal, JOB_STATUSES, type JobStatus } from '../jobs/job-types.js';
import { type Clock, systemClock } from './clock.js';
import { parseCron } from './cron.js';
import {
  activeSchedules,
  applyScheduleChanges,
  insertSchedule,
  type NewSchedule,
  removeSchedule,
  requireSchedule,
  type Schedule,
  type ScheduleChanges,
  scheduleById,
  setScheduleTimes,
} from './schedule-store.js';
import { insertTicks, type NewTick, type ScheduleTick } from './schedule-ticks.js';
import { scheduleType } from './schedule-types.js';
import { overlapTick, planTicks } from './tick-plan.js';

export interface SchedulerServices {
  conn: Store;
  /**
   * Present when this process's timers tick the due times (SQLite: the gate orders ticks with the
   * job workers' result writes). Absent on PostgreSQL, where the cluster's nodes tick every
   * schedule once across the cluster (cluster/cluster-schedules.ts) and this serves the mutations.
   */
  timers?: { writeGate: WriteGate };
  bus: EventBus;
  log: Logger;
  jobs: JobQueue;
  /** Default: the system clock. */
  clock?: Clock;
}

/** Why due times passed without a run. */
const MISSED_WHILE_DOWN = 'the server was not running at this time';
/** How soon a tick that found SQLite's write lock taken is tried again. */
const BUSY_RETRY_MS = 50;
const MISSED_WHILE_LATE = 'the scheduler was late (the server was busy) and runs a schedule once to catch up';

const LIVE_SQL = JOB_STATUSES.filter((s) => !isTerminal(s))
  .map((s) => `'${s}'`)
  .join(', ');

const q = statements('scheduler', {
  /** The schedule's newest job still QUEUED, PROCESSING or CANCELLING. */
  activeRun: {
    sqlite: `SELECT id, status FROM jobs WHERE schedule_id = ? AND status IN (${LIVE_SQL}) ORDER BY id DESC LIMIT 1`,
    postgres: `SELECT id, status FROM jobs WHERE schedule_id = $1 AND status IN (${LIVE_SQL}) ORDER BY id DESC LIMIT 1`,
  },
});

/** A run of the schedule still QUEUED, PROCESSING or CANCELLING, if any. */
async function activeRun(conn: Store, scheduleId: number): Promise<{ id: number; status: JobStatus } | undefined> {
  return conn.get<{ id: number; status: JobStatus }>(q.activeRun, [scheduleId]);
}

/**
 * Runs schedules at their due times with one exact timer per ACTIVE schedule (no polling), and
 * accounts for every due time: STARTED (a job linked to the schedule), SKIPPED_OVERLAP (its
 * previous run is still active: a schedule never runs twice at once), MISSED (the server was
 * down or late: of the due times that passed, only the latest runs), FAILED_TO_START. Each
 * tick is published on `topics.scheduleTicks`. The schedule mutations go through here too, so
 * a change re-arms its timer without the caller having to remember.
 */
export class Scheduler {
  private readonly timers = new Map<number, () => void>();
  private running = false;
  readonly clock: Clock;

  constructor(private readonly services: SchedulerServices) {
    this.clock = services.clock ?? systemClock;
  }

  /** Catches up on the due times that passed while the server was down, then arms every ACTIVE schedule. */
  async start(): Promise<void> {
    if (!this.services.timers) return;
    this.running = true;
    for (const schedule of await activeSchedules(this.services.conn)) await this.fire(schedule.id, MISSED_WHILE_DOWN);
  }

  stop(): void {
    this.running = false;
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
  }

  async create(sandboxId: number, input: NewSchedule): Promise<Schedule> {
    const { conn } = this.services;
    const schedule = await writeUnit(conn, (tx) => insertSchedule(tx, sandboxId, input, this.clock.now()));
    this.arm(schedule);
    return schedule;
  }

  async update(
    sandboxId: number,
    id: number,
    changes: ScheduleChanges,
    expectedVersion?: number | null,
  ): Promise<Schedule> {
    const { conn } = this.services;
    const schedule = await writeUnit(conn, (tx) =>
      applyScheduleChanges(tx, sandboxId, id, changes, expectedVersion, this.clock.now()),
    );
    this.arm(schedule);
    return schedule;
  }

  /** Deletes a schedule; a run of it already queued or running goes on. */
  async delete(sandboxId: number, id: number): Promise<number> {
    const { conn } = this.services;
    await writeUnit(conn, (tx) => removeSchedule(tx, sandboxId, id));
    this.disarm(id);
    return id;
  }

  /** Starts a run now, outside the cron; CONFLICT while a run of it is still active. */
  runNow(sandboxId: number, id: number): Promise<Job> {
    const { conn } = this.services;
    return writeUnit(conn, async (tx) => {
      const schedule = await requireSchedule(tx, sandboxId, id);
      const active = await activeRun(tx, id);
      if (active) {
        throw conflict(
          `Schedule "${schedule.name}" has a run still ${active.status} (${encodeGlobalId('Job', active.id)}); a schedule never runs twice at once`,
          { jobStatus: active.status },
        );
      }
      const job = await this.startRun(tx, schedule);
      await setScheduleTimes(tx, id, { lastRunAt: this.clock.now() });
      return job;
    });
  }

  /** The next `count` due times of a schedule after now (its cron, whatever its state). */
  upcoming(schedule: Schedule, count: number): number[] {
    return parseCron(schedule.cron, schedule.timezone).upcoming(count, this.clock.now());
  }

  /** Queues a run inside the caller's unit (`tx`). */
  private startRun(tx: UnitOf<Store>, schedule: Schedule): Promise<Job> {
    const app = { conn: tx, jobs: this.services.jobs };
    return scheduleType(schedule.type).start(app, schedule.sandboxId, schedule.properties, {
      trigger: 'SCHEDULE',
      scheduleId: schedule.id,
    });
  }

  private disarm(id: number): void {
    this.timers.get(id)?.();
    this.timers.delete(id);
  }

  private arm(schedule: Schedule): void {
    this.disarm(schedule.id);
    if (!this.running || schedule.state !== 'ACTIVE' || schedule.nextRunAt == null) return;
    this.timers.set(
      schedule.id,
      this.clock.at(schedule.nextRunAt, () => void this.fire(schedule.id, MISSED_WHILE_LATE)),
    );
  }

  /**
   * Accounts for the due times of a schedule that have come, then arms it for the next one. A
   * timer fires it and forgets it (a tick logs and retries its own failures); `start` waits.
   */
  private async fire(id: number, missedReason: string): Promise<void> {
    this.timers.delete(id);
    if (!this.running) return;
    // Taken when no job worker is writing its results: waited for without blocking (db/write-gate.ts).
    await this.services.timers!.writeGate.run(() => this.record(id, missedReason));
  }

  private async record(id: number, missedReason: string): Promise<void> {
    if (!this.running) return;
    const { conn, log, bus } = this.services;
    let ticks: ScheduleTick[] = [];
    let schedule: Schedule | undefined;
    try {
      // Never waited for on the main thread (db/busy.ts): another process may hold the lock.
      [schedule, ticks] = await writeUnit(
        conn,
        async (tx): Promise<[Schedule | undefined, ScheduleTick[]]> => {
          const current = await scheduleById(tx, id);
          const now = this.clock.now();
          if (current?.state !== 'ACTIVE' || current.nextRunAt == null || current.nextRunAt > now) return [current, []];
          const recorded = await this.account(tx, current, now, missedReason);
          return [await scheduleById(tx, id), recorded];
        },
        { busyWait: false },
      );
    } catch (err) {
      if (isBusy(err)) {
        // Nothing was written; the tick is taken again as soon as the lock is likely free.
        this.timers.set(
          id,
          this.clock.at(this.clock.now() + BUSY_RETRY_MS, () => void this.fire(id, missedReason)),
        );
        return;
      }
      // The database refused (full, damaged): try again in a second rather than lose the schedule.
      log.error({ err, scheduleId: id }, 'schedule tick could not be recorded; retrying');
      this.timers.set(
        id,
        this.clock.at(this.clock.now() + 1000, () => void this.fire(id, missedReason)),
      );
      return;
    }
    for (const tick of ticks) bus.publish(topics.scheduleTicks(tick.sandboxId), tick);
    if (schedule) this.arm(schedule);
  }

  /**
   * Records every due time from the schedule's next one up to `now` (inside the caller's
   * unit): the latest runs, the ones before it are MISSED. Returns the ticks recorded.
   */
  private async account(
    tx: UnitOf<Store>,
    schedule: Schedule,
    now: number,
    missedReason: string,
  ): Promise<ScheduleTick[]> {
    const plan = planTicks(schedule, now, missedReason);
    const ticks = await insertTicks(tx, plan.missed);
    if (plan.latest != null)
      ticks.push(...(await insertTicks(tx, [await this.runDue(tx, schedule, plan.latest, now)])));
    await setScheduleTimes(tx, schedule.id, { nextRunAt: plan.nextRunAt });
    return ticks;
  }

  /** The outcome of the one due time that runs. */
  private async runDue(tx: UnitOf<Store>, schedule: Schedule, dueAt: number, now: number): Promise<NewTick> {
    const { log } = this.services;
    const base = { sandboxId: schedule.sandboxId, scheduleId: schedule.id, recordedAt: now, dueAt };
    const active = await activeRun(tx, schedule.id);
    if (active) return overlapTick(schedule, dueAt, now, active);
    try {
      // A savepoint: a start that fails leaves nothing of itself, and the tick is still recorded.
      const job = await writeUnit(tx, (savepoint) => this.startRun(savepoint, schedule));
      await setScheduleTimes(tx, schedule.id, { lastRunAt: now });
      return { ...base, outcome: 'STARTED', jobId: job.id };
    } catch (err) {
      log.warn({ err, scheduleId: schedule.id }, 'scheduled run failed to start');
      return { ...base, outcome: 'FAILED_TO_START', reason: err instanceof Error ? err.message : String(err) };
    }
  }
}
