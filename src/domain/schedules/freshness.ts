import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
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

/** The lifecycle states in which an audience is evaluated, as SQL literals. */
const EVALUATED = LIFECYCLE_STATES.filter((s) => isEvaluated(s))
  .map((s) => `'${s}'`)
  .join(', ');

const q = statements('freshness', {
  /** The sandbox's ACTIVE segmentation schedules, properties as JSON text. */
  active: {
    sqlite: `SELECT id, json(properties) AS properties, next_run_at AS "nextRunAt" FROM schedules
      WHERE sandbox_id = ? AND state = 'ACTIVE' AND type = 'BATCH_SEGMENTATION'`,
    postgres: `SELECT id, CAST(properties AS text) AS properties, next_run_at AS "nextRunAt" FROM schedules
      WHERE sandbox_id = $1 AND state = 'ACTIVE' AND type = 'BATCH_SEGMENTATION'`,
  },
  /**
   * Audiences of the JSON array whose definition is batch-enabled, while they are evaluated. `+a.sandbox_id`: see
   * audiences' byIds (src/domain/audiences.ts); the answer is a set, in no order.
   */
  batchEvaluated: {
    sqlite: `SELECT a.id FROM audiences a JOIN segment_definitions d ON d.id = a.definition_id
      WHERE +a.sandbox_id = ? AND a.id IN (SELECT value FROM json_each(?))
        AND d.eval_batch = 1 AND a.lifecycle_state IN (${EVALUATED})`,
    postgres: `SELECT a.id FROM audiences a JOIN segment_definitions d ON d.id = a.definition_id
      WHERE a.sandbox_id = $1 AND a.id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
        AND d.eval_batch AND a.lifecycle_state IN (${EVALUATED})`,
  },
  /** The status of each job of the JSON array. */
  jobStatus: {
    sqlite: 'SELECT id, status FROM jobs WHERE id IN (SELECT value FROM json_each(?))',
    postgres: `SELECT id, status FROM jobs
      WHERE id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb)))`,
  },
});

/** The freshness of each audience (by id): one pass over the sandbox's ACTIVE segmentation schedules. */
export async function audienceFreshness(
  conn: Store,
  sandboxId: number,
  audienceIds: readonly number[],
): Promise<Map<number, Freshness>> {
  const out = new Map<number, Freshness>();
  const active = (
    await conn.all<{ id: number; properties: string; nextRunAt: number | null }>(q.active, [sandboxId])
  ).map((s) => ({ ...s, properties: JSON.parse(s.properties) as unknown }));
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
      : (await conn.all<{ id: number }>(q.batchEvaluated, [sandboxId, JSON.stringify(audienceIds)])).map((r) => r.id),
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
      : (await conn.all<{ id: number; status: string }>(q.jobStatus, [JSON.stringify(jobIds)])).map(
          (j) => [j.id, j.status] as const,
        ),
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
