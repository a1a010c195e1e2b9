/**
 * Profiles as the JS engine reads them: attributes, events in (timestamp, id) order, and every
 * stored membership (with an external audience's row). One loader serves streaming (many
 * profiles, recent events only) and edge evaluation (one profile, all its events), in three
 * statements whatever the number of profiles.
 */
import type { Connection } from '../db/index.js';
import { preparedOn, type Statement, type StatementRunner, statements } from '../db/statement.js';
import { eventRecord, eventsInOrder, type ProfileDocument } from '../pql/index.js';
import { isCurrentStatus, type MembershipStatus } from './membership-statuses.js';

/** A document plus the stored status of each of the profile's memberships (EXITED too). */
export type StoredProfileDocument = ProfileDocument & {
  memberships: Set<number>;
  statuses: Map<number, MembershipStatus>;
  payloads: Map<number, Record<string, unknown>>;
};

/** A JSON array of profile ids, as PostgreSQL reads it. */
const IDS_PG = 'SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb))';

/**
 * The loader's statements, each with its PostgreSQL text giving rows of the same shape: JSON
 * arrays as text, a membership's payload as the JSON text of its object (or null).
 */
const q = statements('profile-documents', {
  /** Parameters: the ids (JSON array), the sandbox. */
  attributes: {
    // CROSS JOIN: the planner must start from the few ids, not from the tables.
    sqlite:
      'SELECT p.id AS id, json(p.attributes) AS a FROM json_each(?) AS j CROSS JOIN profiles AS p ON p.id = j.value WHERE p.sandbox_id = ?',
    postgres: `SELECT p.id AS id, CAST(p.attributes AS text) AS a FROM profiles AS p
      WHERE p.id IN (${IDS_PG}) AND p.sandbox_id = $2`,
  },
  /**
   * Parameters: the ids, events since. One row per profile with its events as one JSON array in
   * (ts, id) order: SQLite builds the array and V8 parses it far faster than better-sqlite3
   * makes an object per event row.
   */
  events: {
    sqlite: `SELECT e.profile_id AS profileId,
         json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events
       FROM json_each(?) AS j CROSS JOIN events AS e ON e.profile_id = j.value AND e.ts >= ? GROUP BY e.profile_id`,
    postgres: `SELECT e.profile_id AS "profileId",
         CAST(jsonb_agg(jsonb_build_array(e.id, e.ts, e.event_type, e.payload) ORDER BY e.ts, e.id) AS text) AS events
       FROM events AS e WHERE e.profile_id IN (${IDS_PG}) AND e.ts >= $2 GROUP BY e.profile_id`,
  },
  /** The same for a few event types (a JSON array), through the (profile, type, ts) index: the ids, the types, since. */
  eventsOfTypes: {
    sqlite: `SELECT e.profile_id AS profileId,
         json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events
       FROM json_each(?) AS j CROSS JOIN json_each(?) AS t CROSS JOIN events AS e
         ON e.profile_id = j.value AND e.event_type = t.value AND e.ts >= ?
       GROUP BY e.profile_id`,
    postgres: `SELECT e.profile_id AS "profileId",
         CAST(jsonb_agg(jsonb_build_array(e.id, e.ts, e.event_type, e.payload) ORDER BY e.ts, e.id) AS text) AS events
       FROM events AS e WHERE e.profile_id IN (${IDS_PG})
         AND e.event_type IN (SELECT value FROM jsonb_array_elements_text(CAST($2 AS jsonb))) AND e.ts >= $3
       GROUP BY e.profile_id`,
  },
  /** Likewise one row per profile: [audience id, status, payload text or null] per membership. The ids. */
  memberships: {
    sqlite: `SELECT m.profile_id AS profileId, json_group_array(json_array(m.audience_id, m.status, m.payload)) AS memberships
       FROM json_each(?) AS j CROSS JOIN memberships AS m ON m.profile_id = j.value GROUP BY m.profile_id`,
    postgres: `SELECT m.profile_id AS "profileId",
         CAST(jsonb_agg(jsonb_build_array(m.audience_id, m.status, CAST(m.payload AS text))) AS text) AS memberships
       FROM memberships AS m WHERE m.profile_id IN (${IDS_PG}) GROUP BY m.profile_id`,
  },
});

type AttributeRow = { id: number; a: string };
type EventsRow = { profileId: number; events: string };
type MembershipsRow = { profileId: number; memberships: string };

/** The statement that reads the events asked for and its parameters; none for an empty set of types. */
function eventsQuery(
  ids: string,
  eventsSince: number,
  eventTypes: ReadonlySet<string> | null,
): { statement: Statement; params: unknown[] } | undefined {
  if (eventTypes === null) return { statement: q.events, params: [ids, eventsSince] };
  if (eventTypes.size === 0) return undefined;
  return { statement: q.eventsOfTypes, params: [ids, JSON.stringify([...eventTypes]), eventsSince] };
}

/**
 * The documents of the given profiles of a sandbox (profiles of other sandboxes are left out).
 * Only events from `eventsSince` on are read (streaming looks back a bounded window; edge
 * evaluation reads them all), and with `eventTypes` only events of those types (streaming loads
 * what the definitions it runs read; an empty set reads no events).
 */
export function loadProfileDocuments(
  conn: Connection,
  sandboxId: number,
  profileIds: readonly number[],
  eventsSince = Number.MIN_SAFE_INTEGER,
  eventTypes: ReadonlySet<string> | null = null,
): Map<number, StoredProfileDocument> {
  const ids = JSON.stringify(profileIds);
  const { sqlite } = conn;
  const attributes = preparedOn(sqlite, q.attributes).all(ids, sandboxId) as AttributeRow[];
  const read = eventsQuery(ids, eventsSince, eventTypes);
  const events = read ? (preparedOn(sqlite, read.statement).all(...read.params) as EventsRow[]) : [];
  const memberships = preparedOn(sqlite, q.memberships).all(ids) as MembershipsRow[];
  return documentsFromRows(attributes, events, memberships);
}

/**
 * loadProfileDocuments through a store's statements, on either database (streaming on a pooled
 * database reads its documents inside the ingest's unit, so it sees the unit's own writes).
 */
export async function loadProfileDocumentsOn(
  store: Pick<StatementRunner, 'all'>,
  sandboxId: number,
  profileIds: readonly number[],
  eventsSince = Number.MIN_SAFE_INTEGER,
  eventTypes: ReadonlySet<string> | null = null,
): Promise<Map<number, StoredProfileDocument>> {
  const ids = JSON.stringify(profileIds);
  const attributes = await store.all<AttributeRow>(q.attributes, [ids, sandboxId]);
  const read = eventsQuery(ids, eventsSince, eventTypes);
  const events = read ? await store.all<EventsRow>(read.statement, read.params) : [];
  const memberships = await store.all<MembershipsRow>(q.memberships, [ids]);
  return documentsFromRows(attributes, events, memberships);
}

/** What the three reads returned, as documents, whichever database answered them. */
export function documentsFromRows(
  attributes: readonly AttributeRow[],
  events: readonly EventsRow[],
  memberships: readonly MembershipsRow[],
): Map<number, StoredProfileDocument> {
  const docs = new Map<number, StoredProfileDocument>();
  for (const row of attributes) {
    docs.set(row.id, {
      attributes: JSON.parse(row.a) as Record<string, unknown>,
      events: [],
      memberships: new Set(),
      statuses: new Map(),
      payloads: new Map(),
    });
  }
  for (const row of events) {
    const doc = docs.get(row.profileId);
    if (!doc) continue;
    for (const [id, ts, type, payload] of JSON.parse(row.events) as [
      number,
      number,
      string,
      Record<string, unknown>,
    ][]) {
      // Records that are their own evaluation items: a window keeps them from one ingest to the next.
      doc.events.push(eventRecord(id, ts, type, payload));
    }
  }
  // Read in (ts, id) order, every one an eventRecord.
  for (const doc of docs.values()) eventsInOrder(doc.events);
  for (const row of memberships) {
    const doc = docs.get(row.profileId);
    if (!doc) continue;
    for (const [audienceId, status, payload] of JSON.parse(row.memberships) as [
      number,
      MembershipStatus,
      string | null,
    ][]) {
      doc.statuses.set(audienceId, status);
      if (!isCurrentStatus(status)) continue;
      doc.memberships.add(audienceId);
      // An external audience's row, for `inSegment("…").payload.<field>`.
      if (payload !== null) doc.payloads.set(audienceId, JSON.parse(payload) as Record<string, unknown>);
    }
  }
  return docs;
}

/** One profile's document with all its events, or undefined when the sandbox has no such profile. */
export function loadProfileDocument(
  conn: Connection,
  sandboxId: number,
  profileId: number,
): StoredProfileDocument | undefined {
  return loadProfileDocuments(conn, sandboxId, [profileId]).get(profileId);
}

/**
 * One profile's document with all its events, read through a statement runner of either
 * database (on PostgreSQL, a client inside the caller's transaction, so one snapshot).
 */
export async function readProfileDocument(
  runner: Pick<StatementRunner, 'all'>,
  sandboxId: number,
  profileId: number,
): Promise<StoredProfileDocument | undefined> {
  return (await loadProfileDocumentsOn(runner, sandboxId, [profileId])).get(profileId);
}
