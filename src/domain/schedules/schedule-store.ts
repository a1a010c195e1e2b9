import { and, eq, inArray, type SQL, sql } from 'drizzle-orm';
import type { Connection } from '../../db/index.js';
import { scheduleAudiences, schedules, scheduleTicks } from '../../db/schema.js';
import { validName } from '../audiences.js';
import { conflict, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
import { parseCron } from './cron.js';
import { replaceScheduleAudiences } from './schedule-references.js';
import { scheduleType } from './schedule-types.js';
import type { ScheduleState, ScheduleType } from './schedule-vocabulary.js';

export interface Schedule {
  id: number;
  sandboxId: number;
  name: string;
  type: ScheduleType;
  properties: unknown;
  cron: string;
  timezone: string;
  state: ScheduleState;
  /** The next due time not yet accounted for; null while INACTIVE. */
  nextRunAt: number | null;
  lastRunAt: number | null;
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface NewSchedule {
  name: string;
  type: ScheduleType;
  /** Checked by the type's validate (absent is refused there). */
  properties?: unknown;
  cron: string;
  timezone?: string | null;
  state?: ScheduleState | null;
}

export interface ScheduleChanges {
  name?: string | null;
  properties?: unknown;
  cron?: string | null;
  timezone?: string | null;
  state?: ScheduleState | null;
}

export interface ScheduleFilter {
  type?: ScheduleType | null;
  state?: ScheduleState | null;
}

type ScheduleRow = typeof schedules.$inferSelect;

function toSchedule(row: ScheduleRow): Schedule {
  const { nameKey: _nameKey, ...rest } = row;
  return rest;
}

export async function schedulesByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Schedule>> {
  const out = new Map<number, Schedule>();
  if (ids.length === 0) return out;
  const rows = conn.db
    .select()
    .from(schedules)
    .where(and(eq(schedules.sandboxId, sandboxId), inArray(schedules.id, [...ids])))
    .all();
  for (const row of rows) out.set(row.id, toSchedule(row));
  return out;
}

export async function requireSchedule(conn: Connection, sandboxId: number, id: number): Promise<Schedule> {
  const found = (await schedulesByIds(conn, sandboxId, [id])).get(id);
  if (!found) {
    const gid = encodeGlobalId('Schedule', id);
    throw notFound(`No Schedule with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

/** A schedule by id in any sandbox (the scheduler serves them all). */
export async function scheduleById(conn: Connection, id: number): Promise<Schedule | undefined> {
  const row = conn.db.select().from(schedules).where(eq(schedules.id, id)).get();
  return row ? toSchedule(row) : undefined;
}

/** ACTIVE schedules of every sandbox: what the scheduler arms at start. */
export async function activeSchedules(conn: Connection): Promise<Schedule[]> {
  return conn.db
    .select()
    .from(schedules)
    .where(eq(schedules.state, 'ACTIVE'))
    .orderBy(schedules.id)
    .all()
    .map(toSchedule);
}

export async function listSchedules(
  conn: Connection,
  sandboxId: number,
  filter: ScheduleFilter,
  args: PageArgs,
): Promise<Page<Schedule> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(schedules.sandboxId, sandboxId)];
  if (filter.type) conditions.push(eq(schedules.type, filter.type));
  if (filter.state) conditions.push(eq(schedules.state, filter.state));
  const base = [...conditions];
  if (query.after) conditions.push(sql`${schedules.id} > ${Number(query.after[0])}`);
  if (query.before) conditions.push(sql`${schedules.id} < ${Number(query.before[0])}`);
  const rows = conn.db
    .select()
    .from(schedules)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? schedules.id : sql`${schedules.id} DESC`)
    .limit(query.fetch)
    .all();
  const page = toPage(rows, query, (r) => [r.id]);
  return { ...page, items: page.items.map(toSchedule), totalCount: () => countRows(conn, schedules, and(...base)) };
}

async function assertNameFree(conn: Connection, sandboxId: number, name: string, exceptId?: number): Promise<void> {
  const row = conn.db
    .select({ id: schedules.id })
    .from(schedules)
    .where(and(eq(schedules.sandboxId, sandboxId), eq(schedules.nameKey, name.toLowerCase())))
    .get();
  if (row && row.id !== exceptId) throw conflict(`A schedule named "${name}" already exists`);
}

/** The first due time after `now` of an ACTIVE schedule; null while INACTIVE. */
function firstDue(cron: string, timezone: string, state: ScheduleState, now: number): number | null {
  const parsed = parseCron(cron, timezone);
  return state === 'ACTIVE' ? parsed.next(now) : null;
}

/** Validates and inserts a schedule (the caller holds the transaction and arms its timer). */
export async function insertSchedule(
  conn: Connection,
  sandboxId: number,
  input: NewSchedule,
  now: number,
): Promise<Schedule> {
  const name = validName(input.name);
  await assertNameFree(conn, sandboxId, name);
  const targets = await scheduleType(input.type).validate(conn, sandboxId, input.properties);
  const timezone = input.timezone ?? 'UTC';
  const state = input.state ?? 'ACTIVE';
  const nextRunAt = firstDue(input.cron, timezone, state, now);
  const row = conn.db
    .insert(schedules)
    .values({
      sandboxId,
      name,
      nameKey: name.toLowerCase(),
      type: input.type,
      properties: input.properties,
      cron: input.cron.trim(),
      timezone: timezone.trim(),
      state,
      nextRunAt,
      createdAt: now,
      updatedAt: now,
    })
    .returning()
    .get();
  await replaceScheduleAudiences(conn, sandboxId, row.id, targets.audienceIds);
  return toSchedule(row);
}

/**
 * Applies changes (the caller holds the transaction and re-arms the timer). A new cron, zone or
 * state counts due times from `now`: nothing before the change is reported as missed.
 */
export async function applyScheduleChanges(
  conn: Connection,
  sandboxId: number,
  id: number,
  changes: ScheduleChanges,
  expectedVersion: number | null | undefined,
  now: number,
): Promise<Schedule> {
  const current = await requireSchedule(conn, sandboxId, id);
  if (expectedVersion != null && expectedVersion !== current.version) {
    throw conflict(`The schedule is at version ${current.version}, not ${expectedVersion}: reload and try again`, {
      version: current.version,
    });
  }
  const name = changes.name != null ? validName(changes.name) : current.name;
  if (changes.name != null) await assertNameFree(conn, sandboxId, name, id);
  const propertiesGiven = changes.properties !== undefined && changes.properties !== null;
  const properties = propertiesGiven ? changes.properties : current.properties;
  if (propertiesGiven) {
    const targets = await scheduleType(current.type).validate(conn, sandboxId, properties);
    await replaceScheduleAudiences(conn, sandboxId, id, targets.audienceIds);
  }
  const cron = changes.cron?.trim() ?? current.cron;
  const timezone = changes.timezone?.trim() ?? current.timezone;
  const state = changes.state ?? current.state;
  const timing = cron !== current.cron || timezone !== current.timezone || state !== current.state;
  // Parsed even when unchanged-looking, so a bad cron or zone is refused before anything is written.
  const nextRunAt = timing ? firstDue(cron, timezone, state, now) : current.nextRunAt;
  const row = conn.db
    .update(schedules)
    .set({
      name,
      nameKey: name.toLowerCase(),
      properties,
      cron,
      timezone,
      state,
      nextRunAt,
      version: current.version + 1,
      updatedAt: now,
    })
    .where(and(eq(schedules.id, id), eq(schedules.version, current.version)))
    .returning()
    .get();
  if (!row) throw conflict('The schedule changed while this update ran: reload and try again');
  return toSchedule(row);
}

/** Removes a schedule with its ticks and references; its runs stay, without their schedule. */
export async function removeSchedule(conn: Connection, sandboxId: number, id: number): Promise<number> {
  await requireSchedule(conn, sandboxId, id);
  conn.db.delete(scheduleTicks).where(eq(scheduleTicks.scheduleId, id)).run();
  conn.db.delete(scheduleAudiences).where(eq(scheduleAudiences.scheduleId, id)).run();
  conn.db.delete(schedules).where(eq(schedules.id, id)).run();
  return id;
}

/** Records the scheduler's progress on a schedule. */
export async function setScheduleTimes(
  conn: Connection,
  id: number,
  set: { nextRunAt?: number | null; lastRunAt?: number | null },
): Promise<void> {
  conn.db.update(schedules).set(set).where(eq(schedules.id, id)).run();
}
