import { and, eq, inArray } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { audiences, jobs, schedules, segmentDefinitions } from '../../db/schema.js';
import { isEvaluated, LIFECYCLE_STATES } from '../lifecycle.js';
import { schedulesNaming } from './schedule-references.js';
import { lastDecidingTicks } from './schedule-ticks.js';

/** How fresh an audience is kept: the schedule that evaluates it, and whether its last run went wrong. */
export interface Freshness {
  /** The ACTIVE BATCH_SEGMENTATION schedule that evaluates it next; null when none does. */
  scheduleId: number | null;
  /** True when that schedule's last due time was MISSED, failed to start, or its run failed or was cancelled; null without a schedule. */
  stale: boolean | null;
}

const NONE: Freshness = { scheduleId: null, stale: null };

/** The freshness of each audience (by id): one pass over the sandbox's ACTIVE segmentation schedules. */
export async function audienceFreshness(
  conn: Connection,
  sandboxId: number,
  audienceIds: readonly number[],
): Promise<Map<number, Freshness>> {
  const out = new Map<number, Freshness>();
  const active = conn.db
    .select({ id: schedules.id, properties: schedules.properties, nextRunAt: schedules.nextRunAt })
    .from(schedules)
    .where(
      and(eq(schedules.sandboxId, sandboxId), eq(schedules.state, 'ACTIVE'), eq(schedules.type, 'BATCH_SEGMENTATION')),
    )
    .all();
  if (active.length === 0) {
    for (const id of audienceIds) out.set(id, NONE);
    return out;
  }
  const everything = active.filter((s) => (s.properties as { segments?: unknown[] }).segments?.includes('*'));
  const named = await schedulesNaming(
    conn,
    audienceIds,
    active.map((s) => s.id),
  );
  // A "*" schedule evaluates the audiences of batch-enabled definitions while they are evaluated.
  const coveredByAll = new Set(
    everything.length === 0
      ? []
      : conn.db
          .select({ id: audiences.id, state: audiences.lifecycleState })
          .from(audiences)
          .innerJoin(segmentDefinitions, eq(segmentDefinitions.id, audiences.definitionId))
          .where(
            and(
              eq(audiences.sandboxId, sandboxId),
              inArray(audiences.id, [...audienceIds]),
              eq(segmentDefinitions.evalBatch, true),
              inArray(
                audiences.lifecycleState,
                LIFECYCLE_STATES.filter((s) => isEvaluated(s)),
              ),
            ),
          )
          .all()
          .map((r) => r.id),
  );
  const byId = new Map(active.map((s) => [s.id, s]));
  const chosen = new Map<number, number>();
  for (const audienceId of audienceIds) {
    const candidates = [
      ...(named.get(audienceId) ?? []),
      ...(coveredByAll.has(audienceId) ? everything.map((s) => s.id) : []),
    ];
    // The one that runs soonest keeps it fresh; ties go to the older schedule.
    const best = candidates
      .map((id) => byId.get(id)!)
      .sort((a, b) => (a.nextRunAt ?? Infinity) - (b.nextRunAt ?? Infinity) || a.id - b.id)[0];
    if (best) chosen.set(audienceId, best.id);
  }
  const ticks = await lastDecidingTicks(conn, [...new Set(chosen.values())]);
  const jobIds = [...ticks.values()].flatMap((t) => (t.outcome === 'STARTED' && t.jobId != null ? [t.jobId] : []));
  const jobStatus = new Map(
    jobIds.length === 0
      ? []
      : conn.db
          .select({ id: jobs.id, status: jobs.status })
          .from(jobs)
          .where(inArray(jobs.id, jobIds))
          .all()
          .map((j) => [j.id, j.status] as const),
  );
  for (const audienceId of audienceIds) {
    const scheduleId = chosen.get(audienceId);
    if (scheduleId === undefined) {
      out.set(audienceId, NONE);
      continue;
    }
    const tick = ticks.get(scheduleId);
    let stale = false;
    if (tick?.outcome === 'MISSED' || tick?.outcome === 'FAILED_TO_START') stale = true;
    if (tick?.outcome === 'STARTED' && tick.jobId != null) {
      const status = jobStatus.get(tick.jobId);
      stale = status === 'FAILED' || status === 'CANCELLED';
    }
    out.set(audienceId, { scheduleId, stale });
  }
  return out;
}
