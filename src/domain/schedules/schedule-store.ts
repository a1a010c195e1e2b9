import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { validName } from '../audiences.js';
import { conflict, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from '../paging.js';
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

/** A schedule as its statements return it: `properties` is the JSON text. */
type ScheduleRow = Omit<Schedule, 'properties'> & { properties: string };

function toSchedule(row: ScheduleRow): Schedule {
  return { ...row, properties: JSON.parse(row.properties) as unknown };
}

const columns = (properties: string) => `id, sandbox_id AS "sandboxId", name, type, ${properties} AS properties,
  cron, timezone, state, next_run_at AS "nextRunAt", last_run_at AS "lastRunAt", version,
  created_at AS "createdAt", updated_at AS "updatedAt"`;
/** Every column but name_key, in the order Drizzle's select() gave them. */
const COLUMNS = columns('properties');
const COLUMNS_PG = columns('CAST(properties AS text)');

/**
 * A page's conditions: the sandbox, a type and a state (null: any), ids above the first bound
 * and below the second (paging.ts integerBounds).
 */
const FILTER = 'sandbox_id = ? AND type = COALESCE(?, type) AND state = COALESCE(?, state)';
const FILTER_PG =
  'sandbox_id = $1 AND type = COALESCE(CAST($2 AS text), type) AND state = COALESCE(CAST($3 AS text), state)';
const PAGE = `${FILTER} AND id > ? AND id < ?`;
const PAGE_PG = `${FILTER_PG} AND id > $4 AND id < $5`;

const q = statements('schedule-store', {
  /** The schedules of a sandbox among the JSON array of ids. */
  byIds: {
    sqlite: `SELECT ${COLUMNS} FROM schedules WHERE sandbox_id = ? AND id IN (SELECT value FROM json_each(?))`,
    postgres: `SELECT ${COLUMNS_PG} FROM schedules
      WHERE sandbox_id = $1 AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))`,
  },
  byId: {
    sqlite: `SELECT ${COLUMNS} FROM schedules WHERE id = ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM schedules WHERE id = $1`,
  },
  active: {
    sqlite: `SELECT ${COLUMNS} FROM schedules WHERE state = 'ACTIVE' ORDER BY id`,
    postgres: `SELECT ${COLUMNS_PG} FROM schedules WHERE state = 'ACTIVE' ORDER BY id`,
  },
  /** A page oldest first (forward). */
  pageUp: {
    sqlite: `SELECT ${COLUMNS} FROM schedules WHERE ${PAGE} ORDER BY id LIMIT ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM schedules WHERE ${PAGE_PG} ORDER BY id LIMIT $6`,
  },
  /** A page newest first (backward). */
  pageDown: {
    sqlite: `SELECT ${COLUMNS} FROM schedules WHERE ${PAGE} ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM schedules WHERE ${PAGE_PG} ORDER BY id DESC LIMIT $6`,
  },
  count: {
    sqlite: `SELECT count(*) AS n FROM schedules WHERE ${FILTER}`,
    postgres: `SELECT count(*) AS n FROM schedules WHERE ${FILTER_PG}`,
  },
  idByName: {
    sqlite: 'SELECT id FROM schedules WHERE sandbox_id = ? AND name_key = ?',
    postgres: 'SELECT id FROM schedules WHERE sandbox_id = $1 AND name_key = $2',
  },
  insert: {
    sqlite: `INSERT INTO schedules (sandbox_id, name, name_key, type, properties, cron, timezone, state,
        next_run_at, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
    postgres: `INSERT INTO schedules (sandbox_id, name, name_key, type, properties, cron, timezone, state,
        next_run_at, created_at, updated_at)
      VALUES ($1, $2, $3, $4, CAST($5 AS jsonb), $6, $7, $8, $9, $10, $11) RETURNING ${COLUMNS_PG}`,
  },
  /** Changes a schedule at the version read; no row: it moved on meanwhile. */
  update: {
    sqlite: `UPDATE schedules SET name = ?, name_key = ?, properties = ?, cron = ?, timezone = ?, state = ?,
        next_run_at = ?, version = ?, updated_at = ?
      WHERE id = ? AND version = ? RETURNING ${COLUMNS}`,
    postgres: `UPDATE schedules SET name = $1, name_key = $2, properties = CAST($3 AS jsonb), cron = $4,
        timezone = $5, state = $6, next_run_at = $7, version = $8, updated_at = $9
      WHERE id = $10 AND version = $11 RETURNING ${COLUMNS_PG}`,
  },
  deleteTicks: {
    sqlite: 'DELETE FROM schedule_ticks WHERE schedule_id = ?',
    postgres: 'DELETE FROM schedule_ticks WHERE schedule_id = $1',
  },
  deleteAudiences: {
    sqlite: 'DELETE FROM schedule_audiences WHERE schedule_id = ?',
    postgres: 'DELETE FROM schedule_audiences WHERE schedule_id = $1',
  },
  delete: {
    sqlite: 'DELETE FROM schedules WHERE id = ?',
    postgres: 'DELETE FROM schedules WHERE id = $1',
  },
  setNextRunAt: {
    sqlite: 'UPDATE schedules SET next_run_at = ? WHERE id = ?',
    postgres: 'UPDATE schedules SET next_run_at = $1 WHERE id = $2',
  },
  setLastRunAt: {
    sqlite: 'UPDATE schedules SET last_run_at = ? WHERE id = ?',
    postgres: 'UPDATE schedules SET last_run_at = $1 WHERE id = $2',
  },
});

export async function schedulesByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Schedule>> {
  const out = new Map<number, Schedule>();
  if (ids.length === 0) return out;
  const rows = await conn.all<ScheduleRow>(q.byIds, [sandboxId, JSON.stringify(ids)]);
  for (const row of rows) out.set(row.id, toSchedule(row));
  return out;
}

export async function requireSchedule(conn: Store, sandboxId: number, id: number): Promise<Schedule> {
  const found = (await schedulesByIds(conn, sandboxId, [id])).get(id);
  if (!found) {
    const gid = encodeGlobalId('Schedule', id);
    throw notFound(`No Schedule with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

/** A schedule by id in any sandbox (the scheduler serves them all). */
export async function scheduleById(conn: Store, id: number): Promise<Schedule | undefined> {
  const row = await conn.get<ScheduleRow>(q.byId, [id]);
  return row ? toSchedule(row) : undefined;
}

/** ACTIVE schedules of every sandbox: what the scheduler arms at start. */
export async function activeSchedules(conn: Store): Promise<Schedule[]> {
  return (await conn.all<ScheduleRow>(q.active)).map(toSchedule);
}

export async function listSchedules(
  conn: Store,
  sandboxId: number,
  filter: ScheduleFilter,
  args: PageArgs,
): Promise<Page<Schedule> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const base = [sandboxId, filter.type || null, filter.state || null];
  const { above, below } = integerBounds(query, 'ascending');
  const rows = await conn.all<ScheduleRow>(query.direction === 'forward' ? q.pageUp : q.pageDown, [
    ...base,
    above,
    below,
    query.fetch,
  ]);
  const page = toPage(rows, query, (r) => [r.id]);
  return {
    ...page,
    items: page.items.map(toSchedule),
    totalCount: async () => (await conn.get<{ n: number }>(q.count, base))!.n,
  };
}

async function assertNameFree(conn: Store, sandboxId: number, name: string, exceptId?: number): Promise<void> {
  const row = await conn.get<{ id: number }>(q.idByName, [sandboxId, name.toLowerCase()]);
  if (row && row.id !== exceptId) throw conflict(`A schedule named "${name}" already exists`);
}

/** The first due time after `now` of an ACTIVE schedule; null while INACTIVE. */
function firstDue(cron: string, timezone: string, state: ScheduleState, now: number): number | null {
  const parsed = parseCron(cron, timezone);
  return state === 'ACTIVE' ? parsed.next(now) : null;
}

/** Validates and inserts a schedule (the caller holds the transaction and arms its timer). */
export async function insertSchedule(
  conn: Store,
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
  const row = (await conn.get<ScheduleRow>(q.insert, [
    sandboxId,
    name,
    name.toLowerCase(),
    input.type,
    JSON.stringify(input.properties),
    input.cron.trim(),
    timezone.trim(),
    state,
    nextRunAt,
    now,
    now,
  ]))!;
  await replaceScheduleAudiences(conn, sandboxId, row.id, targets.audienceIds);
  return toSchedule(row);
}

/**
 * Applies changes (the caller holds the transaction and re-arms the timer). A new cron, zone or
 * state counts due times from `now`: nothing before the change is reported as missed.
 */
export async function applyScheduleChanges(
  conn: Store,
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
  const row = await conn.get<ScheduleRow>(q.update, [
    name,
    name.toLowerCase(),
    JSON.stringify(properties),
    cron,
    timezone,
    state,
    nextRunAt,
    current.version + 1,
    now,
    id,
    current.version,
  ]);
  if (!row) throw conflict('The schedule changed while this update ran: reload and try again');
  return toSchedule(row);
}

/** Removes a schedule with its ticks and references; its runs stay, without their schedule. */
export async function removeSchedule(conn: Store, sandboxId: number, id: number): Promise<number> {
  await requireSchedule(conn, sandboxId, id);
  await conn.run(q.deleteTicks, [id]);
  await conn.run(q.deleteAudiences, [id]);
  await conn.run(q.delete, [id]);
  return id;
}

/** Records the scheduler's progress on a schedule. */
export async function setScheduleTimes(
  conn: Store,
  id: number,
  set: { nextRunAt?: number | null; lastRunAt?: number | null },
): Promise<void> {
  // As Drizzle's set() did: a time given (null included) is written, an absent one left alone.
  if (set.nextRunAt !== undefined) await conn.run(q.setNextRunAt, [set.nextRunAt, id]);
  if (set.lastRunAt !== undefined) await conn.run(q.setLastRunAt, [set.lastRunAt, id]);
}
