/**
 * What a schedule's passed due times come to, decided once for both schedulers (the
 * single-process one on SQLite and the cluster's on PostgreSQL): every due time from the
 * schedule's next one up to `now` gets a tick; the latest runs (or is skipped because a run is
 * still active), the ones before it are MISSED, one by one up to a thousand and then as one
 * entry with a count; and the schedule's next due time is the first after `now`.
 */
import { type CronSchedule, parseCron } from './cron.js';
import { dueTimes } from './due-times.js';
import type { Schedule } from './schedule-store.js';
import type { NewTick } from './schedule-ticks.js';

export interface TickPlan {
  /** MISSED ticks to record, in due order. */
  missed: NewTick[];
  /** The due time that runs, or null when none has passed. */
  latest: number | null;
  /** The schedule's next due time after `now`. */
  nextRunAt: number | null;
}

export function planTicks(
  schedule: Pick<Schedule, 'id' | 'sandboxId' | 'cron' | 'timezone' | 'nextRunAt'>,
  now: number,
  missedReason: string,
): TickPlan {
  const cron: CronSchedule = parseCron(schedule.cron, schedule.timezone);
  const base = { sandboxId: schedule.sandboxId, scheduleId: schedule.id, recordedAt: now };
  if (schedule.nextRunAt == null) return { missed: [], latest: null, nextRunAt: cron.next(now) };
  const due = dueTimes(cron, schedule.nextRunAt, now);
  const missed: NewTick[] = due.listed.map((dueAt) => ({ ...base, dueAt, outcome: 'MISSED', reason: missedReason }));
  if (due.rest) {
    const { first, last, count, exact } = due.rest;
    const reason = exact ? missedReason : `${missedReason}; counting stopped after ${count} due times`;
    missed.push({ ...base, dueAt: first, lastDueAt: last, count, outcome: 'MISSED', reason });
  }
  return { missed, latest: due.latest, nextRunAt: cron.next(now) };
}

/** The tick of a due time skipped because the schedule's previous run is still active. */
export function overlapTick(
  schedule: Pick<Schedule, 'id' | 'sandboxId'>,
  dueAt: number,
  now: number,
  active: { id: number; status: string },
): NewTick {
  return {
    sandboxId: schedule.sandboxId,
    scheduleId: schedule.id,
    recordedAt: now,
    dueAt,
    outcome: 'SKIPPED_OVERLAP',
    jobId: active.id,
    reason: `the previous run was still ${active.status}`,
  };
}
