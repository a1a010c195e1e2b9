/**
 * The read-back statements of the tests that compare what SQLite and PostgreSQL store (test/db/
 * pg-*.test.ts): one catalogue, so that a column renamed in a migration is fixed once and every
 * such test reads a table the same way. A table read with more columns by one test than by
 * another has a statement for each (`…With…` names the wider one): a test compares whole rows,
 * and a column it did not compare before (a clock's stamp, say) would change what it asserts.
 */
import { type Statement, statements } from '../../src/db/statement.js';
import type { Store } from '../../src/db/store.js';

export const {
  profileRows,
  identityRows,
  eventRows,
  eventRowsWithIngestedAt,
  membershipRows,
  membershipStatuses,
  historyRows,
  historyRowsWithSandbox,
  payloadRows,
  audienceSizes,
  audienceRows,
  audienceRowsWithName,
} = statements('stored-rows-test', {
  profileRows: {
    sqlite:
      'SELECT id, json(attributes) AS attributes, created_at AS "createdAt", updated_at AS "updatedAt" FROM profiles ORDER BY id',
    postgres:
      'SELECT id, CAST(attributes AS text) AS attributes, created_at AS "createdAt", updated_at AS "updatedAt" FROM profiles ORDER BY id',
  },
  identityRows: {
    sqlite: 'SELECT namespace, value, profile_id AS "profileId" FROM identities ORDER BY namespace, value',
    postgres: 'SELECT namespace, value, profile_id AS "profileId" FROM identities ORDER BY namespace, value',
  },
  eventRows: {
    sqlite: `SELECT id, profile_id AS "profileId", ts, event_type AS "eventType", event_id AS "eventId",
      json(payload) AS payload FROM events ORDER BY id`,
    postgres: `SELECT id, profile_id AS "profileId", ts, event_type AS "eventType", event_id AS "eventId",
      CAST(payload AS text) AS payload FROM events ORDER BY id`,
  },
  eventRowsWithIngestedAt: {
    sqlite: `SELECT id, profile_id AS "profileId", ts, event_type AS "eventType", event_id AS "eventId",
      json(payload) AS payload, ingested_at AS "ingestedAt" FROM events ORDER BY id`,
    postgres: `SELECT id, profile_id AS "profileId", ts, event_type AS "eventType", event_id AS "eventId",
      CAST(payload AS text) AS payload, ingested_at AS "ingestedAt" FROM events ORDER BY id`,
  },
  membershipRows: {
    sqlite: `SELECT audience_id AS "audienceId", profile_id AS "profileId", status, qualified_at AS "qualifiedAt",
      last_evaluated_at AS "lastEvaluatedAt", exited_at AS "exitedAt" FROM memberships ORDER BY audience_id, profile_id`,
    postgres: `SELECT audience_id AS "audienceId", profile_id AS "profileId", status, qualified_at AS "qualifiedAt",
      last_evaluated_at AS "lastEvaluatedAt", exited_at AS "exitedAt" FROM memberships ORDER BY audience_id, profile_id`,
  },
  membershipStatuses: {
    sqlite: `SELECT audience_id AS "audienceId", profile_id AS "profileId", status FROM memberships
      ORDER BY audience_id, profile_id`,
    postgres: `SELECT audience_id AS "audienceId", profile_id AS "profileId", status FROM memberships
      ORDER BY audience_id, profile_id`,
  },
  historyRows: {
    sqlite: `SELECT id, profile_id AS "profileId", audience_id AS "audienceId", at, from_status AS "fromStatus",
      to_status AS "toStatus", cause, definition_version AS "definitionVersion" FROM membership_history ORDER BY id`,
    postgres: `SELECT id, profile_id AS "profileId", audience_id AS "audienceId", at, from_status AS "fromStatus",
      to_status AS "toStatus", cause, definition_version AS "definitionVersion" FROM membership_history ORDER BY id`,
  },
  historyRowsWithSandbox: {
    sqlite: `SELECT id, sandbox_id AS "sandboxId", profile_id AS "profileId", audience_id AS "audienceId", at,
      from_status AS "fromStatus", to_status AS "toStatus", cause, definition_version AS "definitionVersion"
      FROM membership_history ORDER BY id`,
    postgres: `SELECT id, sandbox_id AS "sandboxId", profile_id AS "profileId", audience_id AS "audienceId", at,
      from_status AS "fromStatus", to_status AS "toStatus", cause, definition_version AS "definitionVersion"
      FROM membership_history ORDER BY id`,
  },
  payloadRows: {
    sqlite: `SELECT audience_id AS "audienceId", profile_id AS "profileId", payload FROM memberships
      ORDER BY audience_id, profile_id`,
    postgres: `SELECT audience_id AS "audienceId", profile_id AS "profileId", CAST(payload AS text) AS payload
      FROM memberships ORDER BY audience_id, profile_id`,
  },
  audienceSizes: {
    sqlite: 'SELECT id, size FROM audiences ORDER BY id',
    postgres: 'SELECT id, size FROM audiences ORDER BY id',
  },
  audienceRows: {
    sqlite: 'SELECT id, size, last_evaluated_at AS "lastEvaluatedAt" FROM audiences ORDER BY id',
    postgres: 'SELECT id, size, last_evaluated_at AS "lastEvaluatedAt" FROM audiences ORDER BY id',
  },
  audienceRowsWithName: {
    sqlite: 'SELECT id, name, size, last_evaluated_at AS "lastEvaluatedAt" FROM audiences ORDER BY id',
    postgres: 'SELECT id, name, size, last_evaluated_at AS "lastEvaluatedAt" FROM audiences ORDER BY id',
  },
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The profiles, their attributes parsed: the databases' JSON texts differ in key order and spacing. */
export async function storedProfiles(store: Store) {
  const rows = await store.all<{ id: number; attributes: string; createdAt: number; updatedAt: number }>(profileRows);
  return rows.map((p) => ({
    ...p,
    attributes: JSON.parse(p.attributes) as unknown,
  }));
}

/**
 * The events read by `statement`, payloads parsed; an id the ingest generated (a UUID, new on
 * every run) reads 'generated', so that runs compare equal.
 */
export async function storedEvents(store: Store, statement: Statement) {
  const rows = await store.all<{
    id: number;
    profileId: number;
    ts: number;
    eventType: string;
    eventId: string;
    payload: string;
  }>(statement);
  return rows.map((e) => ({
    ...e,
    eventId: UUID.test(e.eventId) ? 'generated' : e.eventId,
    payload: JSON.parse(e.payload) as unknown,
  }));
}

/** The memberships, their history and the audiences, read by the statements the test compares. */
export async function storedMembershipState(store: Store, read: { history: Statement; audiences: Statement }) {
  return {
    memberships: await store.all(membershipRows),
    history: await store.all(read.history),
    audiences: await store.all(read.audiences),
  };
}
