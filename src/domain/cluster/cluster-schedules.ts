/**
 * Schedules on a cluster: every node looks for due schedules, and each due time is accounted for
 * by exactly one of them. A node takes a due schedule's row with `FOR UPDATE SKIP LOCKED`, checks
 * again that it is due, records its ticks (the same plan as the single-process scheduler:
 * planTicks), starts the run and moves `next_run_at` past now, all in one transaction. Another
 * node either skips the locked row or, once it is committed, finds it no longer due; so a tick
 * runs once across the cluster, and every due time has its row in `schedule_ticks` saying what
 * became of it.
 */
import type pg from 'pg';
import { exportRequestFromProperties } from '../exports/export-schedule.js';
import { isTerminal, JOB_STATUSES } from '../jobs/job-types.js';
import { parseSegments } from '../schedules/batch-segmentation.js';
import type { Schedule } from '../schedules/schedule-store.js';
import { type NewTick, type ScheduleTick, TICK_COLUMNS } from '../schedules/schedule-ticks.js';
import { overlapTick, planTicks } from '../schedules/tick-plan.js';
import { enqueueClusterExportJob } from './cluster-export-job.js';
import { enqueueClusterSegmentJob } from './cluster-segment-job.js';

const MISSED =
  'no node of the cluster accounted for it in time (every node was down or late); the latest due time runs';
const LIVE_STATUSES = JOB_STATUSES.filter((s) => !isTerminal(s));

/** What one pass did. */
export interface ScheduleSweep {
  ticks: ScheduleTick[];
  /** The earliest next due time of any active schedule, for the node's next look. */
  nextDueAt: number | null;
}

/** Accounts for every active schedule whose due time has come and that no other node is accounting for. */
export async function runDueSchedules(pool: pg.Pool, now = Date.now()): Promise<ScheduleSweep> {
  const due = (
    await pool.query<{ id: number }>(
      `SELECT id FROM schedules WHERE state = 'ACTIVE' AND next_run_at <= $1 ORDER BY next_run_at, id`,
      [now],
    )
  ).rows;
  const ticks: ScheduleTick[] = [];
  for (const { id } of due) ticks.push(...(await accountSchedule(pool, id, now)));
  const next = (
    await pool.query<{ at: number | null }>(`SELECT min(next_run_at) AS at FROM schedules WHERE state = 'ACTIVE'`)
  ).rows[0]!.at;
  return { ticks, nextDueAt: next };
}

async function accountSchedule(pool: pg.Pool, id: number, now: number): Promise<ScheduleTick[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<Schedule>(
      `SELECT id, sandbox_id AS "sandboxId", name, type, properties, cron, timezone, next_run_at AS "nextRunAt"
       FROM schedules WHERE id = $1 AND state = 'ACTIVE' AND next_run_at <= $2 FOR UPDATE SKIP LOCKED`,
      [id, now],
    );
    const schedule = rows[0];
    if (!schedule) {
      await client.query('COMMIT');
      return [];
    }
    const plan = planTicks(schedule, now, MISSED);
    const ticks = [...plan.missed];
    let lastRunAt: number | null = null;
    if (plan.latest != null) {
      const tick = await runDue(client, schedule, plan.latest, now);
      if (tick.outcome === 'STARTED') lastRunAt = now;
      ticks.push(tick);
    }
    const recorded: ScheduleTick[] = [];
    for (const t of ticks) {
      const { rows } = await client.query<ScheduleTick>(
        `INSERT INTO schedule_ticks (sandbox_id, schedule_id, due_at, last_due_at, count, outcome, job_id, reason, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${TICK_COLUMNS}`,
        [
          t.sandboxId,
          t.scheduleId,
          t.dueAt,
          t.lastDueAt ?? null,
          t.count ?? 1,
          t.outcome,
          t.jobId ?? null,
          t.reason ?? null,
          t.recordedAt,
        ],
      );
      recorded.push(rows[0]!);
    }
    await client.query('UPDATE schedules SET next_run_at = $1, last_run_at = coalesce($2, last_run_at) WHERE id = $3', [
      plan.nextRunAt,
      lastRunAt,
      id,
    ]);
    await client.query('COMMIT');
    return recorded;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** The tick of the due time that runs: started, skipped because a run is still active, or failed to start. */
async function runDue(client: pg.ClientBase, schedule: Schedule, dueAt: number, now: number): Promise<NewTick> {
  const base = { sandboxId: schedule.sandboxId, scheduleId: schedule.id, recordedAt: now, dueAt };
  const active = (
    await client.query<{ id: number; status: string }>(
      'SELECT id, status FROM jobs WHERE schedule_id = $1 AND status = ANY($2::text[]) ORDER BY id DESC LIMIT 1',
      [schedule.id, LIVE_STATUSES],
    )
  ).rows[0];
  if (active) return overlapTick(schedule, dueAt, now, active);
  if (schedule.type !== 'BATCH_SEGMENTATION' && schedule.type !== 'EXPORT') {
    return {
      ...base,
      outcome: 'FAILED_TO_START',
      reason: `${schedule.type} runs in a single SegQL process; the cluster's nodes run segment and export jobs only`,
    };
  }
  // A savepoint: a start that fails leaves nothing of itself, and the tick is still recorded.
  await client.query('SAVEPOINT segql_schedule_start');
  try {
    const options = { trigger: 'SCHEDULE' as const, scheduleId: schedule.id, now };
    let jobId: number;
    if (schedule.type === 'EXPORT') {
      // Checked as the single-process scheduler checks it (export-schedule.ts), against the rows in PostgreSQL.
      jobId = await enqueueClusterExportJob(
        client,
        schedule.sandboxId,
        exportRequestFromProperties(schedule.properties),
        options,
      );
    } else {
      const segments = parseSegments(schedule.properties);
      jobId = await enqueueClusterSegmentJob(
        client,
        schedule.sandboxId,
        segments.all
          ? { definitionIds: null, all: true, at: null }
          : { definitionIds: segments.definitionIds, all: false, at: null },
        options,
      );
    }
    await client.query('RELEASE SAVEPOINT segql_schedule_start');
    return { ...base, outcome: 'STARTED', jobId };
  } catch (err) {
    await client.query('ROLLBACK TO SAVEPOINT segql_schedule_start');
    return { ...base, outcome: 'FAILED_TO_START', reason: err instanceof Error ? err.message : String(err) };
  }
}
