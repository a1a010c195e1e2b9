import { and, desc, eq, inArray, ne, sql } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { scheduleTicks } from '../../db/schema.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
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

/** Records ticks, in order (a thousand MISSED ones at a restart: one statement each, not one await each). */
export async function insertTicks(conn: Connection, ticks: readonly NewTick[]): Promise<ScheduleTick[]> {
  return ticks.map((tick) => conn.db.insert(scheduleTicks).values(tick).returning().get());
}

/** A schedule's ticks, newest first. */
export async function listTicks(
  conn: Connection,
  sandboxId: number,
  scheduleId: number,
  args: PageArgs,
): Promise<Page<ScheduleTick> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const base = [eq(scheduleTicks.sandboxId, sandboxId), eq(scheduleTicks.scheduleId, scheduleId)];
  const conditions = [...base];
  if (query.after) conditions.push(sql`${scheduleTicks.id} < ${Number(query.after[0])}`);
  if (query.before) conditions.push(sql`${scheduleTicks.id} > ${Number(query.before[0])}`);
  const rows = conn.db
    .select()
    .from(scheduleTicks)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? desc(scheduleTicks.id) : scheduleTicks.id)
    .limit(query.fetch)
    .all();
  const page = toPage(rows, query, (r) => [r.id]);
  return { ...page, totalCount: () => countRows(conn, scheduleTicks, and(...base)) };
}

/** The latest tick of each schedule that says how its last due time went (an overlap skip says nothing new). */
export async function lastDecidingTicks(
  conn: Connection,
  scheduleIds: readonly number[],
): Promise<Map<number, ScheduleTick>> {
  const out = new Map<number, ScheduleTick>();
  if (scheduleIds.length === 0) return out;
  const latest = conn.db
    .select({ id: sql<number>`max(${scheduleTicks.id})` })
    .from(scheduleTicks)
    .where(and(inArray(scheduleTicks.scheduleId, [...scheduleIds]), ne(scheduleTicks.outcome, 'SKIPPED_OVERLAP')))
    .groupBy(scheduleTicks.scheduleId)
    .all()
    .map((r) => r.id);
  if (latest.length === 0) return out;
  for (const row of conn.db.select().from(scheduleTicks).where(inArray(scheduleTicks.id, latest)).all())
    out.set(row.scheduleId, row);
  return out;
}
