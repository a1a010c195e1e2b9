import { and, eq, inArray } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { scheduleAudiences, schedules } from '../../db/schema.js';
import { conflict } from '../errors.js';
import { encodeGlobalId } from '../ids.js';

/**
 * The audiences each schedule names. Kept apart from the schedule store (it reads only tables),
 * because audience and definition deletes consult it and the store depends on those modules.
 */

/** Replaces what a schedule names (the caller holds the transaction). */
export async function replaceScheduleAudiences(
  conn: Connection,
  sandboxId: number,
  scheduleId: number,
  audienceIds: readonly number[],
): Promise<void> {
  conn.db.delete(scheduleAudiences).where(eq(scheduleAudiences.scheduleId, scheduleId)).run();
  const unique = [...new Set(audienceIds)];
  if (unique.length > 0) {
    conn.db
      .insert(scheduleAudiences)
      .values(unique.map((audienceId) => ({ scheduleId, audienceId, sandboxId })))
      .run();
  }
}

/** The schedules naming an audience: CONFLICT naming them, for `what` ("Audience "x"", "Segment definition "y""). */
export async function assertNoScheduleNames(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
  what: string,
): Promise<void> {
  const naming = conn.db
    .select({ id: schedules.id, name: schedules.name })
    .from(scheduleAudiences)
    .innerJoin(schedules, eq(schedules.id, scheduleAudiences.scheduleId))
    .where(and(eq(scheduleAudiences.sandboxId, sandboxId), eq(scheduleAudiences.audienceId, audienceId)))
    .orderBy(schedules.id)
    .all();
  if (naming.length === 0) return;
  throw conflict(
    `${what} is named by schedule ${naming.map((s) => `"${s.name}"`).join(', ')}; change or delete the schedule first`,
    { schedules: naming.map((s) => ({ id: encodeGlobalId('Schedule', s.id), name: s.name })) },
  );
}

/** Schedule ids among `scheduleIds` that name each audience of `audienceIds`. */
export async function schedulesNaming(
  conn: Connection,
  audienceIds: readonly number[],
  scheduleIds: readonly number[],
): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  if (audienceIds.length === 0 || scheduleIds.length === 0) return out;
  const rows = conn.db
    .select()
    .from(scheduleAudiences)
    .where(
      and(
        inArray(scheduleAudiences.audienceId, [...audienceIds]),
        inArray(scheduleAudiences.scheduleId, [...scheduleIds]),
      ),
    )
    .all();
  for (const r of rows) out.set(r.audienceId, [...(out.get(r.audienceId) ?? []), r.scheduleId]);
  return out;
}
