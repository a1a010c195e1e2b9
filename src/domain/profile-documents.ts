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
type StoredProfileDocument = ProfileDocument & {
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
    events: sqlite.prepare(
      `SELECT e.profile_id AS profileId, e.id AS id, e.ts AS ts, e.event_type AS type, json(e.payload) AS payload
       FROM json_each(?) AS j CROSS JOIN events AS e ON e.profile_id = j.value AND e.ts >= ? ORDER BY e.profile_id, e.ts, e.id`,
    ),
    // The same for a few event types, through the (profile, type, ts) index.
    eventsOfTypes: sqlite.prepare(
      `SELECT e.profile_id AS profileId, e.id AS id, e.ts AS ts, e.event_type AS type, json(e.payload) AS payload
       FROM json_each(?) AS j CROSS JOIN json_each(?) AS t CROSS JOIN events AS e
         ON e.profile_id = j.value AND e.event_type = t.value AND e.ts >= ?
       ORDER BY e.profile_id, e.ts, e.id`,
    ),
    memberships: sqlite.prepare(
      `SELECT m.profile_id AS profileId, m.audience_id AS audienceId, m.status AS status, m.payload AS payload FROM json_each(?) AS j
       CROSS JOIN memberships AS m ON m.profile_id = j.value`,
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
  for (const e of events as {
    profileId: number;
    id: number;
    ts: number;
    type: string;
    payload: string;
  }[]) {
    docs.get(e.profileId)?.events.push({
      id: e.id,
      timestamp: e.ts,
      eventType: e.type,
      payload: JSON.parse(e.payload) as Record<string, unknown>,
    });
  }
  for (const m of s.memberships.all(ids) as {
    profileId: number;
    audienceId: number;
    status: MembershipStatus;
    payload: string | null;
  }[]) {
    const doc = docs.get(m.profileId);
    if (!doc) continue;
    doc.statuses.set(m.audienceId, m.status);
    if (!isCurrentStatus(m.status)) continue;
    doc.memberships.add(m.audienceId);
    // An external audience's row, for `inSegment("…").payload.<field>`.
    if (m.payload !== null) doc.payloads.set(m.audienceId, JSON.parse(m.payload) as Record<string, unknown>);
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
