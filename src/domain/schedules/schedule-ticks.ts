import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
import type { TickOutcome } from './schedule-vocabulary.js';

/** One due time of a schedule and what became of it (or a run of MISSED ones, with `count`). */
export interface ScheduleTick {
  id: number;
  sandboxId: number;
  scheduleId: number;
  dueAt: number;
  /** For a run of MISSED due times recorded as one: the last of them; null otherwise. */
  lastDueAt: number | null;
  /** Due times this entry stands for: 1, except for a run of MISSED ones. */
  count: number;
  outcome: TickOutcome;
  /** STARTED: the run it started; SKIPPED_OVERLAP: the run that was still active. */
  jobId: number | null;
  reason: string | null;
  /** When the scheduler accounted for it. */
  recordedAt: number;
}

export type NewTick = Omit<ScheduleTick, 'id' | 'lastDueAt' | 'count' | 'jobId' | 'reason'> &
  Partial<Pick<ScheduleTick, 'lastDueAt' | 'count' | 'jobId' | 'reason'>>;

/** A tick row's columns as `ScheduleTick`'s fields (the cluster's ticks are read back the same way). */
export const TICK_COLUMNS = `id, sandbox_id AS "sandboxId", schedule_id AS "scheduleId", due_at AS "dueAt",
  last_due_at AS "lastDueAt", "count", outcome, job_id AS "jobId", reason, recorded_at AS "recordedAt"`;

/** A page's bounds: ids below the first, above the second (paging.ts integerBounds). */
const PAGE = 'sandbox_id = ? AND schedule_id = ? AND id < ? AND id > ?';
const PAGE_PG = 'sandbox_id = $1 AND schedule_id = $2 AND id < $3 AND id > $4';

const q = statements('schedule-ticks', {
  /** A page newest first (forward). */
  pageDown: {
    sqlite: `SELECT ${TICK_COLUMNS} FROM schedule_ticks WHERE ${PAGE} ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${TICK_COLUMNS} FROM schedule_ticks WHERE ${PAGE_PG} ORDER BY id DESC LIMIT $5`,
  },
  /** A page oldest first (backward). */
  pageUp: {
    sqlite: `SELECT ${TICK_COLUMNS} FROM schedule_ticks WHERE ${PAGE} ORDER BY id LIMIT ?`,
    postgres: `SELECT ${TICK_COLUMNS} FROM schedule_ticks WHERE ${PAGE_PG} ORDER BY id LIMIT $5`,
  },
  count: {
    sqlite: 'SELECT count(*) AS n FROM schedule_ticks WHERE sandbox_id = ? AND schedule_id = ?',
    postgres: 'SELECT count(*) AS n FROM schedule_ticks WHERE sandbox_id = $1 AND schedule_id = $2',
  },
  /** The latest tick not SKIPPED_OVERLAP of each schedule of the JSON array. */
  lastDeciding: {
    sqlite: `SELECT ${TICK_COLUMNS} FROM schedule_ticks WHERE id IN (
        SELECT max(id) FROM schedule_ticks
        WHERE schedule_id IN (SELECT value FROM json_each(?)) AND outcome <> 'SKIPPED_OVERLAP'
        GROUP BY schedule_id)`,
    postgres: `SELECT ${TICK_COLUMNS} FROM schedule_ticks WHERE id IN (
        SELECT max(id) FROM schedule_ticks
        WHERE schedule_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb)))
          AND outcome <> 'SKIPPED_OVERLAP'
        GROUP BY schedule_id)`,
  },
  /** Ticks given as a JSON array of NewTick objects, inserted in the array's order. */
  insertAll: {
    sqlite: `INSERT INTO schedule_ticks (sandbox_id, schedule_id, due_at, last_due_at, "count", outcome, job_id,
        reason, recorded_at)
      SELECT value ->> '$.sandboxId', value ->> '$.scheduleId', value ->> '$.dueAt', value ->> '$.lastDueAt',
        coalesce(value ->> '$.count', 1), value ->> '$.outcome', value ->> '$.jobId', value ->> '$.reason',
        value ->> '$.recordedAt'
      FROM json_each(?) ORDER BY key
      RETURNING ${TICK_COLUMNS}`,
    postgres: `INSERT INTO schedule_ticks (sandbox_id, schedule_id, due_at, last_due_at, "count", outcome, job_id,
        reason, recorded_at)
      SELECT CAST(v ->> 'sandboxId' AS bigint), CAST(v ->> 'scheduleId' AS bigint), CAST(v ->> 'dueAt' AS bigint),
        CAST(v ->> 'lastDueAt' AS bigint), coalesce(CAST(v ->> 'count' AS bigint), 1), v ->> 'outcome',
        CAST(v ->> 'jobId' AS bigint), v ->> 'reason', CAST(v ->> 'recordedAt' AS bigint)
      FROM jsonb_array_elements(CAST($1 AS jsonb)) WITH ORDINALITY AS e(v, n) ORDER BY n
      RETURNING ${TICK_COLUMNS}`,
  },
});

/**
 * Records ticks, in order, in one statement whatever their number (a thousand MISSED ones at a
 * restart would otherwise be a thousand round trips on PostgreSQL); returns them in that order.
 */
export async function insertTicks(conn: Store, ticks: readonly NewTick[]): Promise<ScheduleTick[]> {
  if (ticks.length === 0) return [];
  const rows = await conn.all<ScheduleTick>(q.insertAll, [JSON.stringify(ticks)]);
  return rows.sort((a, b) => a.id - b.id);
}

/** A schedule's ticks, newest first. */
export async function listTicks(
  conn: Store,
  sandboxId: number,
  scheduleId: number,
  args: PageArgs,
): Promise<Page<ScheduleTick> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const { below, above } = integerBounds(query);
  const rows = await conn.all<ScheduleTick>(query.direction === 'forward' ? q.pageDown : q.pageUp, [
    sandboxId,
    scheduleId,
    below,
    above,
    query.fetch,
  ]);
  const page = toPage(rows, query, (r) => [r.id]);
  return {
    ...page,
    totalCount: async () => (await conn.get<{ n: number }>(q.count, [sandboxId, scheduleId]))!.n,
  };
}

/** The latest tick of each schedule that says how its last due time went (an overlap skip says nothing new). */
export async function lastDecidingTicks(
  conn: Store,
  scheduleIds: readonly number[],
): Promise<Map<number, ScheduleTick>> {
  const out = new Map<number, ScheduleTick>();
  if (scheduleIds.length === 0) return out;
  for (const row of await conn.all<ScheduleTick>(q.lastDeciding, [JSON.stringify(scheduleIds)]))
    out.set(row.scheduleId, row);
  return out;
}
