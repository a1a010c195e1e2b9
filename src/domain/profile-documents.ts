/**
 * Profiles as the JS engine reads them: attributes, events in (timestamp, id) order, and every
 * stored membership (with an external audience's row). One loader serves streaming (many
 * profiles, recent events only) and edge evaluation (one profile, all its events), in three
 * statements whatever the number of profiles.
 */
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import type { ProfileDocument } from '../pql/index.js';
import { isCurrentStatus, type MembershipStatus } from './membership-statuses.js';

/** A document plus the stored status of each of the profile's memberships (EXITED too). */
export type StoredProfileDocument = ProfileDocument & {
  memberships: Set<number>;
  statuses: Map<number, MembershipStatus>;
  payloads: Map<number, Record<string, unknown>>;
};

function prepare(sqlite: Connection['sqlite']) {
  return {
    // CROSS JOIN: the planner must start from the few ids, not from the tables.
    attributes: sqlite.prepare(
      'SELECT p.id AS id, json(p.attributes) AS a FROM json_each(?) AS j CROSS JOIN profiles AS p ON p.id = j.value WHERE p.sandbox_id = ?',
    ),
    // One row per profile with its events as one JSON array in (ts, id) order: SQLite builds the
    // array and V8 parses it far faster than better-sqlite3 makes an object per event row.
    events: sqlite.prepare(
      `SELECT e.profile_id AS profileId,
         json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events
       FROM json_each(?) AS j CROSS JOIN events AS e ON e.profile_id = j.value AND e.ts >= ? GROUP BY e.profile_id`,
    ),
    // The same for a few event types, through the (profile, type, ts) index.
    eventsOfTypes: sqlite.prepare(
      `SELECT e.profile_id AS profileId,
         json_group_array(json_array(e.id, e.ts, e.event_type, json(e.payload)) ORDER BY e.ts, e.id) AS events
       FROM json_each(?) AS j CROSS JOIN json_each(?) AS t CROSS JOIN events AS e
         ON e.profile_id = j.value AND e.event_type = t.value AND e.ts >= ?
       GROUP BY e.profile_id`,
    ),
    // Likewise one row per profile: [audience id, status, payload text or null] per membership.
    memberships: sqlite.prepare(
      `SELECT m.profile_id AS profileId, json_group_array(json_array(m.audience_id, m.status, m.payload)) AS memberships
       FROM json_each(?) AS j CROSS JOIN memberships AS m ON m.profile_id = j.value GROUP BY m.profile_id`,
    ),
  };
}

const DOCUMENT_STATEMENTS = cacheKey<ReturnType<typeof prepare>>('profile document statements');

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
  const s = conn.cache.get(DOCUMENT_STATEMENTS, () => prepare(conn.sqlite));
  const ids = JSON.stringify(profileIds);
  const docs = new Map<number, StoredProfileDocument>();
  for (const row of s.attributes.all(ids, sandboxId) as { id: number; a: string }[]) {
    docs.set(row.id, {
      attributes: JSON.parse(row.a) as Record<string, unknown>,
      events: [],
      memberships: new Set(),
      statuses: new Map(),
      payloads: new Map(),
    });
  }
  const events =
    eventTypes === null
      ? s.events.all(ids, eventsSince)
      : eventTypes.size === 0
        ? []
        : s.eventsOfTypes.all(ids, JSON.stringify([...eventTypes]), eventsSince);
  for (const row of events as { profileId: number; events: string }[]) {
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
  for (const row of s.memberships.all(ids) as { profileId: number; memberships: string }[]) {
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
