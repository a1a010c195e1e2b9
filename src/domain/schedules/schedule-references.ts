import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { conflict } from '../errors.js';
import { encodeGlobalId } from '../ids.js';

/**
 * The audiences each schedule names. Kept apart from the schedule store (it reads only tables),
 * because audience and definition deletes consult it and the store depends on those modules.
 */

const q = statements('schedule-references', {
  clear: {
    sqlite: 'DELETE FROM schedule_audiences WHERE schedule_id = ?',
    postgres: 'DELETE FROM schedule_audiences WHERE schedule_id = $1',
  },
  /** The schedule names each audience of the JSON array (no duplicates in it). */
  insert: {
    sqlite: `INSERT INTO schedule_audiences (schedule_id, audience_id, sandbox_id)
      SELECT ?, value, ? FROM json_each(?)`,
    postgres: `INSERT INTO schedule_audiences (schedule_id, audience_id, sandbox_id)
      SELECT CAST($1 AS bigint), CAST(value AS bigint), CAST($2 AS bigint)
      FROM jsonb_array_elements_text(CAST($3 AS jsonb))`,
  },
  /** The schedules of the sandbox naming an audience, oldest first. */
  naming: {
    sqlite: `SELECT s.id, s.name FROM schedule_audiences a JOIN schedules s ON s.id = a.schedule_id
      WHERE a.sandbox_id = ? AND a.audience_id = ? ORDER BY s.id`,
    postgres: `SELECT s.id, s.name FROM schedule_audiences a JOIN schedules s ON s.id = a.schedule_id
      WHERE a.sandbox_id = $1 AND a.audience_id = $2 ORDER BY s.id`,
  },
  /** Pairs with the audience among the first JSON array and the schedule among the second. */
  among: {
    sqlite: `SELECT schedule_id AS "scheduleId", audience_id AS "audienceId", sandbox_id AS "sandboxId"
      FROM schedule_audiences
      WHERE audience_id IN (SELECT value FROM json_each(?)) AND schedule_id IN (SELECT value FROM json_each(?))
      ORDER BY audience_id, schedule_id`,
    postgres: `SELECT schedule_id AS "scheduleId", audience_id AS "audienceId", sandbox_id AS "sandboxId"
      FROM schedule_audiences
      WHERE audience_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb)))
        AND schedule_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY audience_id, schedule_id`,
  },
});

/** Replaces what a schedule names (the caller holds the transaction). */
export async function replaceScheduleAudiences(
  conn: Store,
  sandboxId: number,
  scheduleId: number,
  audienceIds: readonly number[],
): Promise<void> {
  await conn.run(q.clear, [scheduleId]);
  const unique = [...new Set(audienceIds)];
  if (unique.length > 0) await conn.run(q.insert, [scheduleId, sandboxId, JSON.stringify(unique)]);
}

/** The schedules naming an audience: CONFLICT naming them, for `what` ("Audience "x"", "Segment definition "y""). */
export async function assertNoScheduleNames(
  conn: Store,
  sandboxId: number,
  audienceId: number,
  what: string,
): Promise<void> {
  const naming = await conn.all<{ id: number; name: string }>(q.naming, [sandboxId, audienceId]);
  if (naming.length === 0) return;
  throw conflict(
    `${what} is named by schedule ${naming.map((s) => `"${s.name}"`).join(', ')}; change or delete the schedule first`,
    { schedules: naming.map((s) => ({ id: encodeGlobalId('Schedule', s.id), name: s.name })) },
  );
}

/** Schedule ids among `scheduleIds` that name each audience of `audienceIds`. */
export async function schedulesNaming(
  conn: Store,
  audienceIds: readonly number[],
  scheduleIds: readonly number[],
): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  if (audienceIds.length === 0 || scheduleIds.length === 0) return out;
  const rows = await conn.all<{ scheduleId: number; audienceId: number; sandboxId: number }>(q.among, [
    JSON.stringify(audienceIds),
    JSON.stringify(scheduleIds),
  ]);
  for (const r of rows) out.set(r.audienceId, [...(out.get(r.audienceId) ?? []), r.scheduleId]);
  return out;
}
