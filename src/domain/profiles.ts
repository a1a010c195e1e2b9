import type { Connection } from '../db/index.js';
import { preparedOn, type StatementRunner, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import { refreshAudienceSize } from './audiences.js';
import { notFound } from './errors.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { assertIdentity, type IdentityInput } from './profile-ingest.js';

export interface Profile {
  id: number;
  sandboxId: number;
  attributes: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
}

export interface Identity {
  profileId: number;
  namespace: string;
  id: string;
}

export interface StoredEvent {
  id: number;
  profileId: number;
  eventId: string;
  timestamp: number;
  eventType: string;
  payload: Record<string, unknown>;
}

/**
 * When a profile last changed: its row's `updated_at` (created, attributes, identities) or its
 * latest event's `ingested_at`, whichever is later. Ingest does not write the row for an event
 * (a random page per event, a fifth of the one writer's time: event-ingest.ts); the events'
 * (profile, type, ts, ingested_at) index answers the latest ingest without reading the events.
 */
const UPDATED_AT = `max(updated_at, coalesce((SELECT max(e.ingested_at) FROM events AS e
  WHERE e.profile_id = profiles.id), 0))`;
const UPDATED_AT_PG = `GREATEST(updated_at, (SELECT max(e.ingested_at) FROM events AS e
  WHERE e.profile_id = profiles.id))`;
/**
 * SQL: profile `p` changed after (`>`) or at or after (`>=`) `since` — its row written, or an
 * event of its ingested — for `profiles(updatedAfter:)` and an export's `fromIngestTimestamp`.
 * The events' part reads the time index, appended to in ingest order: the profiles that gained
 * events since, not every profile's events. The arguments after `op` are placeholders, in the
 * order they appear (`since` twice: numbered ones may name a second parameter of the same value).
 */
export function profileChangedSince(
  p: string,
  op: '>' | '>=',
  since: string,
  sandbox: string,
  sinceAgain = since,
): string {
  return `(${p}.updated_at ${op} ${since}
    OR ${p}.id IN (SELECT profile_id FROM events WHERE sandbox_id = ${sandbox} AND ingested_at ${op} ${sinceAgain}))`;
}

const PROFILE = `id, sandbox_id AS "sandboxId", json(attributes) AS attributes, created_at AS "createdAt",
  ${UPDATED_AT} AS "updatedAt"`;
const PROFILE_PG = `id, sandbox_id AS "sandboxId", CAST(attributes AS text) AS attributes, created_at AS "createdAt",
  ${UPDATED_AT_PG} AS "updatedAt"`;
const EVENT = `id, profile_id AS "profileId", event_id AS "eventId", ts AS "timestamp", event_type AS "eventType",
  json(payload) AS payload`;
const EVENT_PG = `id, profile_id AS "profileId", event_id AS "eventId", ts AS "timestamp", event_type AS "eventType",
  CAST(payload AS text) AS payload`;

/**
 * The filters of listProfiles, each off when its value is null; better-sqlite3 takes no numbered
 * parameters, so a value comes once for each place it is used (profileFilterParams).
 */
const PROFILE_FILTER = `sandbox_id = ?
  AND (? IS NULL AND ? IS NULL OR EXISTS (SELECT 1 FROM identities
    WHERE identities.profile_id = profiles.id AND (? IS NULL OR namespace = ?) AND (? IS NULL OR value = ?)))
  AND (? IS NULL OR ${profileChangedSince('profiles', '>', '?', '?')})`;
const PROFILE_FILTER_PG = `sandbox_id = $1
  AND (CAST($2 AS text) IS NULL AND CAST($3 AS text) IS NULL OR EXISTS (SELECT 1 FROM identities
    WHERE identities.profile_id = profiles.id AND (CAST($4 AS text) IS NULL OR namespace = $5)
      AND (CAST($6 AS text) IS NULL OR value = $7)))
  AND (CAST($8 AS bigint) IS NULL OR ${profileChangedSince('profiles', '>', '$9', '$10', '$11')})`;
/** Then ids above and below (paging.ts integerBounds) and the limit. */
const PROFILE_PAGE = `${PROFILE_FILTER} AND id > ? AND id < ?`;
const PROFILE_PAGE_PG = `${PROFILE_FILTER_PG} AND id > $12 AND id < $13`;

/**
 * With both a namespace and a value the filter names at most one profile: found through the
 * identities key rather than tested on every profile of the sandbox, as the null-switched
 * EXISTS above would (a full scan of a large store to answer a lookup).
 */
const IDENTIFIED = `sandbox_id = ? AND id IN (SELECT profile_id FROM identities
    WHERE sandbox_id = ? AND namespace = ? AND value = ?) AND (? IS NULL OR ${UPDATED_AT} > ?)`;
const IDENTIFIED_PG = `sandbox_id = $1 AND id IN (SELECT profile_id FROM identities
    WHERE sandbox_id = $2 AND namespace = $3 AND value = $4) AND (CAST($5 AS bigint) IS NULL OR ${UPDATED_AT_PG} > $6)`;

function identifiedParams(sandboxId: number, filter: ProfileFilter): unknown[] | undefined {
  if (filter.identityNamespace == null || filter.identityValue == null) return undefined;
  const updated = filter.updatedAfter ?? null;
  return [sandboxId, sandboxId, filter.identityNamespace, filter.identityValue, updated, updated];
}

function profileFilterParams(sandboxId: number, filter: ProfileFilter): unknown[] {
  const ns = filter.identityNamespace ?? null;
  const value = filter.identityValue ?? null;
  const updated = filter.updatedAfter ?? null;
  return [sandboxId, ns, value, ns, ns, value, value, updated, updated, sandboxId, updated];
}

/**
 * listEvents' texts, one per shape: with or without a type (the type uses the (profile, type,
 * ts) index; a null-switched type would cost it the index, and a page of a profile with many
 * events would read them all), each bounded on both sides always — the time range and the
 * (ts, id) cursors, absent ones given as the widest values (eventBounds) — so each bound is an
 * index range, not a filter.
 */
const EVENT_RANGE = `AND ts >= ? AND ts <= ? AND (ts, id) < (?, ?) AND (ts, id) > (?, ?)`;
const eventTexts = (typed: boolean) => {
  const where = `sandbox_id = ? AND profile_id = ?${typed ? ' AND event_type = ?' : ''}`;
  let n = 0;
  const pg = (text: string) => text.replace(/\?/g, () => `$${++n}`);
  const down = `SELECT ${EVENT} FROM events WHERE ${where} ${EVENT_RANGE} ORDER BY ts DESC, id DESC LIMIT ?`;
  const up = `SELECT ${EVENT} FROM events WHERE ${where} ${EVENT_RANGE} ORDER BY ts ASC, id ASC LIMIT ?`;
  const count = `SELECT count(*) AS n FROM events WHERE ${where} AND ts >= ? AND ts <= ?`;
  const numbered = (text: string, columns: string) => {
    n = 0;
    return pg(text.replace(`SELECT ${EVENT} `, `SELECT ${columns} `));
  };
  return {
    down: { sqlite: down, postgres: numbered(down, EVENT_PG) },
    up: { sqlite: up, postgres: numbered(up, EVENT_PG) },
    count: { sqlite: count, postgres: numbered(count, EVENT_PG) },
  };
};
const EVENTS = eventTexts(false);
const TYPED_EVENTS = eventTexts(true);

function eventFilterParams(sandboxId: number, profileId: number, filter: EventFilter): unknown[] {
  return [
    sandboxId,
    profileId,
    ...(filter.eventType == null ? [] : [filter.eventType]),
    filter.from ?? Number.MIN_SAFE_INTEGER,
    filter.to ?? Number.MAX_SAFE_INTEGER,
  ];
}

const q = statements('profiles', {
  /** The sandbox's profiles among the ids of the JSON array. */
  byIds: {
    sqlite: `SELECT ${PROFILE} FROM profiles WHERE sandbox_id = ? AND id IN (SELECT value FROM json_each(?))`,
    postgres: `SELECT ${PROFILE_PG} FROM profiles
      WHERE sandbox_id = $1 AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))`,
  },
  /** The profile id an identity names (profileIdByIdentity, and its synchronous twin). */
  idByIdentity: {
    sqlite: 'SELECT profile_id AS "profileId" FROM identities WHERE sandbox_id = ? AND namespace = ? AND value = ?',
    postgres:
      'SELECT profile_id AS "profileId" FROM identities WHERE sandbox_id = $1 AND namespace = $2 AND value = $3',
  },
  /**
   * The sandbox's events among the ids of the JSON array, by id. `+sandbox_id` and `ORDER BY id`:
   * see audiences' byIds (src/domain/audiences.ts).
   */
  eventsByIds: {
    sqlite: `SELECT ${EVENT} FROM events WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${EVENT_PG} FROM events
      WHERE sandbox_id = $1 AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY id`,
  },
  /**
   * Identities of the profiles of the JSON array; namespaces and values in bytes on both. `+sandbox_id`: as audiences'
   * byIds (src/domain/audiences.ts), here so that the profile index finds the few asked for instead of SQLite walking
   * the sandbox's every identity along the primary key.
   */
  identitiesOf: {
    sqlite: `SELECT profile_id AS "profileId", namespace, value AS id FROM identities
      WHERE +sandbox_id = ? AND profile_id IN (SELECT value FROM json_each(?))
      ORDER BY profile_id, namespace, value`,
    postgres: `SELECT profile_id AS "profileId", namespace, value AS id FROM identities
      WHERE sandbox_id = $1 AND profile_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY profile_id, namespace COLLATE "C", value COLLATE "C"`,
  },
  /** A page of profiles in id order (forward). */
  pageUp: {
    sqlite: `SELECT ${PROFILE} FROM profiles WHERE ${PROFILE_PAGE} ORDER BY id ASC LIMIT ?`,
    postgres: `SELECT ${PROFILE_PG} FROM profiles WHERE ${PROFILE_PAGE_PG} ORDER BY id ASC LIMIT $14`,
  },
  /** A page of profiles in reverse id order (backward). */
  pageDown: {
    sqlite: `SELECT ${PROFILE} FROM profiles WHERE ${PROFILE_PAGE} ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${PROFILE_PG} FROM profiles WHERE ${PROFILE_PAGE_PG} ORDER BY id DESC LIMIT $14`,
  },
  count: {
    sqlite: `SELECT count(*) AS n FROM profiles WHERE ${PROFILE_FILTER}`,
    postgres: `SELECT count(*) AS n FROM profiles WHERE ${PROFILE_FILTER_PG}`,
  },
  /** The same three for a filter naming one identity (IDENTIFIED). */
  identifiedUp: {
    sqlite: `SELECT ${PROFILE} FROM profiles WHERE ${IDENTIFIED} AND id > ? AND id < ? ORDER BY id ASC LIMIT ?`,
    postgres: `SELECT ${PROFILE_PG} FROM profiles WHERE ${IDENTIFIED_PG} AND id > $7 AND id < $8 ORDER BY id ASC LIMIT $9`,
  },
  identifiedDown: {
    sqlite: `SELECT ${PROFILE} FROM profiles WHERE ${IDENTIFIED} AND id > ? AND id < ? ORDER BY id DESC LIMIT ?`,
    postgres: `SELECT ${PROFILE_PG} FROM profiles WHERE ${IDENTIFIED_PG} AND id > $7 AND id < $8 ORDER BY id DESC LIMIT $9`,
  },
  countIdentified: {
    sqlite: `SELECT count(*) AS n FROM profiles WHERE ${IDENTIFIED}`,
    postgres: `SELECT count(*) AS n FROM profiles WHERE ${IDENTIFIED_PG}`,
  },
  /** A page of a profile's events newest first (forward), oldest first (backward), their count. */
  eventsDown: EVENTS.down,
  eventsUp: EVENTS.up,
  countEvents: EVENTS.count,
  /** The same, of one event type. */
  typedEventsDown: TYPED_EVENTS.down,
  typedEventsUp: TYPED_EVENTS.up,
  countTypedEvents: TYPED_EVENTS.count,
  /** Audiences the profile belongs to (their sizes are refreshed after it goes). */
  audiencesOf: {
    sqlite: 'SELECT audience_id AS id FROM memberships WHERE sandbox_id = ? AND profile_id = ?',
    postgres: 'SELECT audience_id AS id FROM memberships WHERE sandbox_id = $1 AND profile_id = $2',
  },
  deleteIdentities: {
    sqlite: 'DELETE FROM identities WHERE sandbox_id = ? AND profile_id = ?',
    postgres: 'DELETE FROM identities WHERE sandbox_id = $1 AND profile_id = $2',
  },
  deleteEvents: {
    sqlite: 'DELETE FROM events WHERE sandbox_id = ? AND profile_id = ?',
    postgres: 'DELETE FROM events WHERE sandbox_id = $1 AND profile_id = $2',
  },
  deleteMemberships: {
    sqlite: 'DELETE FROM memberships WHERE sandbox_id = ? AND profile_id = ?',
    postgres: 'DELETE FROM memberships WHERE sandbox_id = $1 AND profile_id = $2',
  },
  deleteMembershipHistory: {
    sqlite: 'DELETE FROM membership_history WHERE sandbox_id = ? AND profile_id = ?',
    postgres: 'DELETE FROM membership_history WHERE sandbox_id = $1 AND profile_id = $2',
  },
  delete: {
    sqlite: 'DELETE FROM profiles WHERE sandbox_id = ? AND id = ?',
    postgres: 'DELETE FROM profiles WHERE sandbox_id = $1 AND id = $2',
  },
  /** The count the triggers keep (countProfiles); no row for an unknown sandbox. */
  profileCount: {
    sqlite: 'SELECT profile_count AS n FROM sandboxes WHERE id = ?',
    postgres: 'SELECT profile_count AS n FROM sandboxes WHERE id = $1',
  },
  /** Lowest profile id; null when the sandbox has none. Alone: SQLite answers it with one index seek. */
  lowestId: {
    sqlite: 'SELECT min(id) AS v FROM profiles WHERE sandbox_id = ?',
    postgres: 'SELECT min(id) AS v FROM profiles WHERE sandbox_id = $1',
  },
  /** Highest profile id; null when the sandbox has none (a statement apart from lowestId, for the same reason). */
  highestId: {
    sqlite: 'SELECT max(id) AS v FROM profiles WHERE sandbox_id = ?',
    postgres: 'SELECT max(id) AS v FROM profiles WHERE sandbox_id = $1',
  },
});

type ProfileRow = Omit<Profile, 'attributes'> & { attributes: string };
type EventRow = Omit<StoredEvent, 'payload'> & { payload: string };

function toProfile(row: ProfileRow): Profile {
  return { ...row, attributes: JSON.parse(row.attributes) };
}

export async function profilesByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Profile>> {
  const out = new Map<number, Profile>();
  if (ids.length === 0) return out;
  for (const row of await conn.all<ProfileRow>(q.byIds, [sandboxId, JSON.stringify(ids)]))
    out.set(row.id, toProfile(row));
  return out;
}

async function profileById(conn: Store, sandboxId: number, id: number): Promise<Profile | undefined> {
  return (await profilesByIds(conn, sandboxId, [id])).get(id);
}

/**
 * Synchronous: the query workers' edge evaluation (evaluation.ts) looks profiles up with it on
 * their own thread; the API reads the same statement through profileIdByIdentity.
 */
export function profileIdByIdentitySync(
  conn: Connection,
  sandboxId: number,
  identity: IdentityInput,
): number | undefined {
  const row = preparedOn(conn.sqlite, q.idByIdentity).get(sandboxId, identity.namespace, identity.id) as
    | { profileId: number }
    | undefined;
  return row?.profileId;
}

/** The profile id an identity names, through the handle (or any statement runner: a PostgreSQL client's). */
export async function profileIdByIdentity(
  conn: Pick<StatementRunner, 'get'>,
  sandboxId: number,
  identity: IdentityInput,
): Promise<number | undefined> {
  const row = await conn.get<{ profileId: number }>(q.idByIdentity, [sandboxId, identity.namespace, identity.id]);
  return row?.profileId;
}

export async function profileByIdentity(
  conn: Store,
  sandboxId: number,
  identity: IdentityInput,
): Promise<Profile | undefined> {
  assertIdentity(identity);
  const id = await profileIdByIdentity(conn, sandboxId, identity);
  return id === undefined ? undefined : await profileById(conn, sandboxId, id);
}

export async function eventsByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, StoredEvent>> {
  const out = new Map<number, StoredEvent>();
  if (ids.length === 0) return out;
  for (const r of await conn.all<EventRow>(q.eventsByIds, [sandboxId, JSON.stringify(ids)]))
    out.set(r.id, { ...r, payload: JSON.parse(r.payload) });
  return out;
}

/** Identities of many profiles in one statement (the DataLoader batch). */
export async function identitiesOf(
  conn: Store,
  sandboxId: number,
  profileIds: readonly number[],
): Promise<Map<number, Identity[]>> {
  const out = new Map<number, Identity[]>(profileIds.map((id) => [id, []]));
  if (profileIds.length === 0) return out;
  const rows = await conn.all<Identity>(q.identitiesOf, [sandboxId, JSON.stringify(profileIds)]);
  for (const row of rows) out.get(row.profileId)?.push(row);
  return out;
}

export interface ProfileFilter {
  identityNamespace?: string | null;
  identityValue?: string | null;
  updatedAfter?: number | null;
}

export interface Counted<T> extends Page<T> {
  totalCount: () => Promise<number>;
}

/** Profiles in id order, filtered by identity and update time. */
export async function listProfiles(
  conn: Store,
  sandboxId: number,
  filter: ProfileFilter,
  args: PageArgs,
): Promise<Counted<Profile>> {
  const query = pageQuery(args);
  const { above, below } = integerBounds(query, 'ascending');
  const identified = identifiedParams(sandboxId, filter);
  const filters = identified ?? profileFilterParams(sandboxId, filter);
  const forward = query.direction === 'forward';
  const page = identified ? (forward ? q.identifiedUp : q.identifiedDown) : forward ? q.pageUp : q.pageDown;
  const rows = (await conn.all<ProfileRow>(page, [...filters, above, below, query.fetch])).map(toProfile);
  return {
    ...toPage(rows, query, (p) => [p.id]),
    totalCount: async () => (await conn.get<{ n: number }>(identified ? q.countIdentified : q.count, filters))!.n,
  };
}

interface EventFilter {
  eventType?: string | null;
  from?: number | null;
  to?: number | null;
}

/** A profile's events, newest first (ties by row id, newest first). */
export async function listEvents(
  conn: Store,
  sandboxId: number,
  profileId: number,
  filter: EventFilter,
  args: PageArgs,
): Promise<Counted<StoredEvent>> {
  const query = pageQuery(args);
  const filters = eventFilterParams(sandboxId, profileId, filter);
  const typed = filter.eventType != null;
  // Newest first: "after" a cursor means older. A cursor is (ts, id); one that is not two
  // numbers (a hand-made one) matches no row, as before.
  const bound = (key: unknown[] | undefined, absent: number): [number, number] => {
    if (key === undefined) return [absent, absent];
    const [ts, id] = key.map(Number) as [number, number];
    return Number.isFinite(ts) && Number.isFinite(id) ? [ts, id] : [Number.NaN, Number.NaN];
  };
  const [after, before] = [bound(query.after, Number.MAX_SAFE_INTEGER), bound(query.before, Number.MIN_SAFE_INTEGER)];
  if ([...after, ...before].some((n) => Number.isNaN(n))) {
    return { ...toPage([] as StoredEvent[], query, (e) => [e.timestamp, e.id]), totalCount: countEvents };
  }
  const statement =
    query.direction === 'forward' ? (typed ? q.typedEventsDown : q.eventsDown) : typed ? q.typedEventsUp : q.eventsUp;
  const rows = (await conn.all<EventRow>(statement, [...filters, ...after, ...before, query.fetch])).map((r) => ({
    ...r,
    payload: JSON.parse(r.payload) as Record<string, unknown>,
  }));
  return {
    ...toPage(rows, query, (e) => [e.timestamp, e.id]),
    totalCount: countEvents,
  };
  async function countEvents(): Promise<number> {
    return (await conn.get<{ n: number }>(typed ? q.countTypedEvents : q.countEvents, filters))!.n;
  }
}

/** Deletes a profile with its identities, events and memberships (history too: the person is gone). */
export async function deleteProfile(conn: Store, sandboxId: number, identity: IdentityInput): Promise<number> {
  assertIdentity(identity);
  return await writeUnit(conn, async (tx) => {
    const id = await profileIdByIdentity(tx, sandboxId, identity);
    if (id === undefined) throw notFound(`No profile has identity ${identity.namespace}:${identity.id}`);
    const audienceIds = (await tx.all<{ id: number }>(q.audiencesOf, [sandboxId, id])).map((r) => r.id);
    for (const statement of [q.deleteIdentities, q.deleteEvents, q.deleteMemberships, q.deleteMembershipHistory])
      await tx.run(statement, [sandboxId, id]);
    await tx.run(q.delete, [sandboxId, id]);
    for (const audienceId of audienceIds) await refreshAudienceSize(tx, audienceId);
    return id;
  });
}

/** How many profiles a sandbox has: the count the triggers of drizzle/0005 keep, no scan. */
export async function countProfiles(conn: Store, sandboxId: number): Promise<number> {
  return (await conn.get<{ n: number }>(q.profileCount, [sandboxId]))?.n ?? 0;
}

/** countProfiles synchronously: job workers read it (profileIdRange) inside their read transactions. */
export function countProfilesSync(conn: Connection, sandboxId: number): number {
  const row = preparedOn(conn.sqlite, q.profileCount).get(sandboxId) as { n: number } | undefined;
  return row?.n ?? 0;
}

interface ProfileIdRange {
  /** Lowest and highest profile id; null when the sandbox has none. */
  lo: number | null;
  hi: number | null;
  count: number;
}

/**
 * A sandbox's profile ids at a glance, without a scan: two seeks of the (sandbox_id, id) index and the kept count.
 * Synchronous: segment evaluation and preview sampling read it on their worker threads.
 */
export function profileIdRange(conn: Connection, sandboxId: number): ProfileIdRange {
  // Separate statements: SQLite answers a lone min() or max() with one index seek, both together with a scan.
  const lo = preparedOn(conn.sqlite, q.lowestId).get(sandboxId) as { v: number | null } | undefined;
  const hi = preparedOn(conn.sqlite, q.highestId).get(sandboxId) as { v: number | null } | undefined;
  return { lo: lo?.v ?? null, hi: hi?.v ?? null, count: countProfilesSync(conn, sandboxId) };
}

/** The first index of `sorted` whose id is above `key` (`strict`) or at least `key`. */
function searchIds(sorted: ArrayLike<number>, key: number, strict: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (strict ? sorted[mid]! <= key : sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A page of profiles out of a sorted list of their ids (a preview's results, a dry run's
 * samples), in id order with the id as cursor. A profile deleted since the list was made drops
 * out of the page.
 */
export async function profilePageOfIds(
  conn: Store,
  sandboxId: number,
  sortedIds: ArrayLike<number>,
  args: PageArgs,
  totalCount: () => number,
): Promise<Page<Profile> & { totalCount: () => number }> {
  const query = pageQuery(args);
  const from = query.after ? searchIds(sortedIds, Number(query.after[0]), true) : 0;
  const to = query.before ? searchIds(sortedIds, Number(query.before[0]), false) : sortedIds.length;
  // Rows in query direction with one extra (query.fetch), as toPage expects; only those are read.
  const take = Math.min(Math.max(0, to - from), query.fetch);
  const rows =
    query.direction === 'forward'
      ? Array.from({ length: take }, (_, i) => sortedIds[from + i]!)
      : Array.from({ length: take }, (_, i) => sortedIds[to - 1 - i]!);
  const page = toPage(rows, query, (id) => [id]);
  const found = await profilesByIds(conn, sandboxId, page.items);
  return {
    ...page,
    items: page.items.map((id) => found.get(id)).filter((p): p is Profile => p !== undefined),
    totalCount,
  };
}
