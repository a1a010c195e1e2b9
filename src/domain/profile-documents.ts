/**
 * Profiles as the JS engine reads them: attributes, events in (timestamp, id) order, and every
 * stored membership (with an external audience's row). One loader serves streaming (many
 * profiles, recent events only) and edge evaluation (one profile, all its events), in three
 * statements whatever the number of profiles. The statements are the catalogue's (both
 * databases, the same rows); turning their rows into documents is one function for both.
 */
import type { Connection } from '../db/index.js';
import { preparedOn, type StatementRunner, statements } from '../db/statement.js';
import type { ProfileDocument } from '../pql/index.js';
import { isCurrentStatus, type MembershipStatus } from './membership-statuses.js';

/** A document plus the stored status of each of the profile's memberships (EXITED too). */
export type StoredProfileDocument = ProfileDocument & {
  memberships: Set<number>;
  statuses: Map<number, MembershipStatus>;
  payloads: Map<number, Record<string, unknown>>;
};

/**
 * The document reads; each takes the profile ids as the JSON text of an array. Rows: `{id, a}`
 * (attributes as JSON text), `{profileId, events}` (a JSON array of [id, ts, type, payload] in
 * (ts, id) order), `{profileId, memberships}` (a JSON array of [audience id, status, payload text
 * or null]).
 */
const q = statements('profile-documents', {
  // CROSS JOIN: the planner must start from the few ids, not from the tables.
  /** Parameters: ids, sandbox. */
  attributes: {
    sqlite:
      'SELECT p.id AS id, json(p.attributes) AS a FROM json_each(?) AS j CROSS JOIN profiles AS p ON p.id = j.value WHERE p.sandbox_id = ?',
    postgres: `SELECT p.id AS id, p.attributes::text AS a
      FROM jsonb_array_elements_text($1::jsonb) AS j(value) JOIN profiles AS p ON p.id = j.value::bigint
      WHERE p.sandbox_id = $2`,
  },
  // One row per profile with its events as one JSON array in (ts, id) order: the database builds
  // the array and V8 parses it far faster than the driver makes an object per event row.
  /** Parameters: ids, events since. */
  events: {
    sqlite: `SELECT e.profile_id AS profileId,
         json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events
       FROM json_each(?) AS j CROSS JOIN events AS e ON e.profile_id = j.value AND e.ts >= ? GROUP BY e.profile_id`,
    postgres: `SELECT e.profile_id AS "profileId",
         json_agg(json_build_array(e.id, e.ts, e.event_type, e.payload) ORDER BY e.ts, e.id)::text AS events
       FROM jsonb_array_elements_text($1::jsonb) AS j(value) JOIN events AS e
         ON e.profile_id = j.value::bigint AND e.ts >= $2::bigint
       GROUP BY e.profile_id`,
  },
  // The same for a few event types, through the (profile, type, ts) index.
  /** Parameters: ids, event types, events since. */
  eventsOfTypes: {
    sqlite: `SELECT e.profile_id AS profileId,
         json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events
       FROM json_each(?) AS j CROSS JOIN json_each(?) AS t CROSS JOIN events AS e
         ON e.profile_id = j.value AND e.event_type = t.value AND e.ts >= ?
       GROUP BY e.profile_id`,
    postgres: `SELECT e.profile_id AS "profileId",
         json_agg(json_build_array(e.id, e.ts, e.event_type, e.payload) ORDER BY e.ts, e.id)::text AS events
       FROM jsonb_array_elements_text($1::jsonb) AS j(value)
         CROSS JOIN jsonb_array_elements_text($2::jsonb) AS t(value)
         JOIN events AS e ON e.profile_id = j.value::bigint AND e.event_type = t.value AND e.ts >= $3::bigint
       GROUP BY e.profile_id`,
  },
  // Likewise one row per profile: [audience id, status, payload text or null] per membership.
  /** Parameters: ids. */
  memberships: {
    sqlite: `SELECT m.profile_id AS profileId, json_group_array(json_array(m.audience_id, m.status, m.payload)) AS memberships
       FROM json_each(?) AS j CROSS JOIN memberships AS m ON m.profile_id = j.value GROUP BY m.profile_id`,
    postgres: `SELECT m.profile_id AS "profileId",
         json_agg(json_build_array(m.audience_id, m.status, m.payload::text))::text AS memberships
       FROM jsonb_array_elements_text($1::jsonb) AS j(value) JOIN memberships AS m ON m.profile_id = j.value::bigint
       GROUP BY m.profile_id`,
  },
});

type AttributeRow = { id: number; a: string };
type EventsRow = { profileId: number; events: string };
type MembershipsRow = { profileId: number; memberships: string };

/** What the three reads returned, as documents: the part both databases share. */
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
      doc.events.push({ id, timestamp: ts, eventType: type, payload });
    }
  }
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
  const run = <Row>(statement: (typeof q)[keyof typeof q], params: unknown[]) =>
    preparedOn(conn.sqlite, statement).all(...params) as Row[];
  const events =
    eventTypes === null
      ? run<EventsRow>(q.events, [ids, eventsSince])
      : eventTypes.size === 0
        ? []
        : run<EventsRow>(q.eventsOfTypes, [ids, JSON.stringify([...eventTypes]), eventsSince]);
  return documentsFromRows(run<AttributeRow>(q.attributes, [ids, sandboxId]), events, run(q.memberships, [ids]));
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
  runner: StatementRunner,
  sandboxId: number,
  profileId: number,
): Promise<StoredProfileDocument | undefined> {
  const ids = JSON.stringify([profileId]);
  const attributes = await runner.all<AttributeRow>(q.attributes, [ids, sandboxId]);
  if (attributes.length === 0) return undefined;
  const events = await runner.all<EventsRow>(q.events, [ids, Number.MIN_SAFE_INTEGER]);
  const memberships = await runner.all<MembershipsRow>(q.memberships, [ids]);
  return documentsFromRows(attributes, events, memberships).get(profileId);
}
