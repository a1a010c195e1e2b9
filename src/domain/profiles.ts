import { and, asc, desc, eq, exists, gt, gte, inArray, lt, lte, type SQL, sql } from 'drizzle-orm';
import type { Connection } from '../db/index.js';
import { events, identities, membershipHistory, memberships, profiles, sandboxes } from '../db/schema.js';
import { writeUnit } from '../db/unit.js';
import { refreshAudienceSize } from './audiences.js';
import { notFound } from './errors.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
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

const profileColumns = {
  id: profiles.id,
  sandboxId: profiles.sandboxId,
  attributes: sql<string>`json(${profiles.attributes})`,
  createdAt: profiles.createdAt,
  updatedAt: profiles.updatedAt,
};

function toProfile(row: {
  id: number;
  sandboxId: number;
  attributes: string;
  createdAt: number;
  updatedAt: number;
}): Profile {
  return { ...row, attributes: JSON.parse(row.attributes) };
}

export async function profilesByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Profile>> {
  const out = new Map<number, Profile>();
  if (ids.length === 0) return out;
  const rows = conn.db
    .select(profileColumns)
    .from(profiles)
    .where(and(eq(profiles.sandboxId, sandboxId), inArray(profiles.id, [...ids])))
    .all();
  for (const row of rows) out.set(row.id, toProfile(row));
  return out;
}

async function profileById(conn: Connection, sandboxId: number, id: number): Promise<Profile | undefined> {
  return (await profilesByIds(conn, sandboxId, [id])).get(id);
}

/**
 * Synchronous: the query workers' edge evaluation (evaluation.ts) looks profiles up with it on
 * their own thread, as the API does on the main one.
 */
export function profileIdByIdentity(conn: Connection, sandboxId: number, identity: IdentityInput): number | undefined {
  const row = conn.db
    .select({ profileId: identities.profileId })
    .from(identities)
    .where(
      and(
        eq(identities.sandboxId, sandboxId),
        eq(identities.namespace, identity.namespace),
        eq(identities.value, identity.id),
      ),
    )
    .get();
  return row?.profileId;
}

export async function profileByIdentity(
  conn: Connection,
  sandboxId: number,
  identity: IdentityInput,
): Promise<Profile | undefined> {
  assertIdentity(identity);
  const id = profileIdByIdentity(conn, sandboxId, identity);
  return id === undefined ? undefined : await profileById(conn, sandboxId, id);
}

const eventColumns = {
  id: events.id,
  profileId: events.profileId,
  eventId: events.eventId,
  timestamp: events.ts,
  eventType: events.eventType,
  payload: sql<string>`json(${events.payload})`,
};

export async function eventsByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, StoredEvent>> {
  const out = new Map<number, StoredEvent>();
  if (ids.length === 0) return out;
  const rows = conn.db
    .select(eventColumns)
    .from(events)
    .where(and(eq(events.sandboxId, sandboxId), inArray(events.id, [...ids])))
    .all();
  for (const r of rows) out.set(r.id, { ...r, payload: JSON.parse(r.payload) });
  return out;
}

/** Identities of many profiles in one statement (the DataLoader batch). */
export async function identitiesOf(
  conn: Connection,
  sandboxId: number,
  profileIds: readonly number[],
): Promise<Map<number, Identity[]>> {
  const out = new Map<number, Identity[]>(profileIds.map((id) => [id, []]));
  if (profileIds.length === 0) return out;
  const rows = conn.db
    .select({ profileId: identities.profileId, namespace: identities.namespace, id: identities.value })
    .from(identities)
    .where(and(eq(identities.sandboxId, sandboxId), inArray(identities.profileId, [...profileIds])))
    .orderBy(identities.profileId, identities.namespace, identities.value)
    .all();
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
  conn: Connection,
  sandboxId: number,
  filter: ProfileFilter,
  args: PageArgs,
): Promise<Counted<Profile>> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(profiles.sandboxId, sandboxId)];
  if (filter.identityNamespace != null || filter.identityValue != null) {
    const idConds: SQL[] = [eq(identities.profileId, profiles.id)];
    if (filter.identityNamespace != null) idConds.push(eq(identities.namespace, filter.identityNamespace));
    if (filter.identityValue != null) idConds.push(eq(identities.value, filter.identityValue));
    conditions.push(
      exists(
        conn.db
          .select({ one: sql`1` })
          .from(identities)
          .where(and(...idConds)),
      ),
    );
  }
  if (filter.updatedAfter != null) conditions.push(gt(profiles.updatedAt, filter.updatedAfter));
  const base = [...conditions];
  if (query.after) conditions.push(gt(profiles.id, Number(query.after[0])));
  if (query.before) conditions.push(lt(profiles.id, Number(query.before[0])));
  const rows = conn.db
    .select(profileColumns)
    .from(profiles)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? asc(profiles.id) : desc(profiles.id))
    .limit(query.fetch)
    .all()
    .map(toProfile);
  return {
    ...toPage(rows, query, (p) => [p.id]),
    totalCount: () => countRows(conn, profiles, and(...base)),
  };
}

interface EventFilter {
  eventType?: string | null;
  from?: number | null;
  to?: number | null;
}

/** A profile's events, newest first (ties by row id, newest first). */
export async function listEvents(
  conn: Connection,
  sandboxId: number,
  profileId: number,
  filter: EventFilter,
  args: PageArgs,
): Promise<Counted<StoredEvent>> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(events.sandboxId, sandboxId), eq(events.profileId, profileId)];
  if (filter.eventType != null) conditions.push(eq(events.eventType, filter.eventType));
  if (filter.from != null) conditions.push(gte(events.ts, filter.from));
  if (filter.to != null) conditions.push(lte(events.ts, filter.to));
  const base = [...conditions];
  // Newest first: "after" a cursor means older.
  if (query.after) {
    const [ts, id] = query.after.map(Number) as [number, number];
    conditions.push(sql`(${events.ts} < ${ts} OR (${events.ts} = ${ts} AND ${events.id} < ${id}))`);
  }
  if (query.before) {
    const [ts, id] = query.before.map(Number) as [number, number];
    conditions.push(sql`(${events.ts} > ${ts} OR (${events.ts} = ${ts} AND ${events.id} > ${id}))`);
  }
  const forward = query.direction === 'forward';
  const rows = conn.db
    .select(eventColumns)
    .from(events)
    .where(and(...conditions))
    .orderBy(...(forward ? [desc(events.ts), desc(events.id)] : [asc(events.ts), asc(events.id)]))
    .limit(query.fetch)
    .all()
    .map((r) => ({ ...r, payload: JSON.parse(r.payload) as Record<string, unknown> }));
  return {
    ...toPage(rows, query, (e) => [e.timestamp, e.id]),
    totalCount: () => countRows(conn, events, and(...base)),
  };
}

/** Deletes a profile with its identities, events and memberships (history too: the person is gone). */
export async function deleteProfile(conn: Connection, sandboxId: number, identity: IdentityInput): Promise<number> {
  assertIdentity(identity);
  return await writeUnit(conn, (tx) => {
    const id = profileIdByIdentity(tx, sandboxId, identity);
    if (id === undefined) throw notFound(`No profile has identity ${identity.namespace}:${identity.id}`);
    const audienceIds = tx.db
      .select({ id: memberships.audienceId })
      .from(memberships)
      .where(and(eq(memberships.sandboxId, sandboxId), eq(memberships.profileId, id)))
      .all()
      .map((r) => r.id);
    for (const table of [identities, events, memberships, membershipHistory]) {
      tx.db
        .delete(table)
        .where(and(eq(table.sandboxId, sandboxId), eq(table.profileId, id)))
        .run();
    }
    tx.db
      .delete(profiles)
      .where(and(eq(profiles.sandboxId, sandboxId), eq(profiles.id, id)))
      .run();
    for (const audienceId of audienceIds) refreshAudienceSize(tx, audienceId);
    return id;
  });
}

/**
 * How many profiles a sandbox has: the count the triggers of drizzle/0005 keep, no scan.
 * Synchronous: job workers read it (profileIdRange) inside their read transactions.
 */
export function countProfiles(conn: Connection, sandboxId: number): number {
  const row = conn.db.select({ n: sandboxes.profileCount }).from(sandboxes).where(eq(sandboxes.id, sandboxId)).get();
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
  const lo = conn.db
    .select({ v: sql<number | null>`min(${profiles.id})` })
    .from(profiles)
    .where(eq(profiles.sandboxId, sandboxId))
    .get();
  const hi = conn.db
    .select({ v: sql<number | null>`max(${profiles.id})` })
    .from(profiles)
    .where(eq(profiles.sandboxId, sandboxId))
    .get();
  return { lo: lo?.v ?? null, hi: hi?.v ?? null, count: countProfiles(conn, sandboxId) };
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
  conn: Connection,
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
