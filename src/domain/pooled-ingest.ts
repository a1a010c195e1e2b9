/**
 * Profiles and events into a pooled database (PostgreSQL), by awaited statements inside a unit
 * of work: the same input gives the same profiles, identities, stitching and events as the
 * synchronous ingest of profile-ingest.ts and event-ingest.ts, which stays SQLite's hot path on
 * its ingest thread. The checks are theirs (`checkProfileRecord`, `checkEvent`); what differs is
 * only how the rows are written: each statement is a round trip to the server, so a request's
 * rows go in a few statements that take JSON arrays, whatever its size, and only a record that
 * may stitch profiles is written on its own. What an ingest changed is returned for the steps
 * that follow it (streaming, pending external members), which the caller runs.
 *
 * Attributes merge as JSON merge patches (RFC 7396: objects merge, `null` removes a field,
 * anything else replaces) computed here rather than by the database, since PostgreSQL has no
 * merge patch of its own; the profile row is read `FOR UPDATE` first. Ingests of one sandbox take
 * one lock of the cluster for their transaction, so two nodes cannot both find an identity new
 * and make two profiles of it, as SQLite's one writer cannot.
 */
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from '../config.js';
import { statements } from '../db/statement.js';
import type { Store, UnitLock } from '../db/store.js';
import { type UnitOf, writeUnit } from '../db/unit.js';
import type { FieldCatalog } from '../pql/index.js';
import { refreshAudienceSize } from './audiences.js';
import { badInput } from './errors.js';
import { timeOrderedId } from './event-ids.js';
import { checkEvent } from './event-ingest.js';
import {
  type AddedEventTypes,
  checkProfileRecord,
  type EventInput,
  type IngestResult,
  mergedIdentitiesRefusal,
  type ProfileRecord,
} from './profile-ingest.js';
import type { WrittenEvent, WrittenEvents } from './streaming-window.js';

/** The kind half of the ingest lock ("SGI1"); its other half is the sandbox id. */
export const INGEST_LOCK_KIND = 0x5347_4931;

/**
 * The lock of the cluster that a sandbox's ingests take for their transaction, and with them
 * whatever else decides on that sandbox's memberships (streaming, the sweep, a cluster segment
 * job's final write), so that two of them never decide on one membership at once.
 */
export function ingestLock(sandboxId: number): UnitLock {
  return [INGEST_LOCK_KIND, sandboxId];
}

const q = statements('pooled-ingest', {
  profilesOfIdentities: {
    sqlite: `SELECT profile_id AS "profileId", namespace, value FROM identities WHERE sandbox_id = ?
      AND (namespace, value) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
      ORDER BY profile_id, namespace, value`,
    postgres: `SELECT profile_id AS "profileId", namespace, value FROM identities WHERE sandbox_id = $1
      AND (namespace, value) IN (SELECT x->>0, x->>1 FROM jsonb_array_elements(CAST($2 AS jsonb)) AS x)
      ORDER BY profile_id, namespace, value`,
  },
  countIdentities: {
    sqlite: 'SELECT count(*) AS n FROM identities WHERE profile_id IN (SELECT value FROM json_each(?))',
    postgres: `SELECT count(*) AS n FROM identities
      WHERE profile_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb)))`,
  },
  insertProfile: {
    sqlite:
      'INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) VALUES (?, jsonb(?), ?, ?) RETURNING id',
    postgres:
      'INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) VALUES ($1, CAST($2 AS jsonb), $3, $4) RETURNING id',
  },
  attributesForUpdate: {
    sqlite: 'SELECT json(attributes) AS attributes FROM profiles WHERE id = ?',
    postgres: 'SELECT CAST(attributes AS text) AS attributes FROM profiles WHERE id = $1 FOR UPDATE',
  },
  setAttributes: {
    sqlite: 'UPDATE profiles SET attributes = jsonb(?), updated_at = ? WHERE id = ?',
    postgres: 'UPDATE profiles SET attributes = CAST($1 AS jsonb), updated_at = $2 WHERE id = $3',
  },
  insertIdentity: {
    sqlite: `INSERT INTO identities (sandbox_id, namespace, value, profile_id, created_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT DO NOTHING`,
    postgres: `INSERT INTO identities (sandbox_id, namespace, value, profile_id, created_at) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT DO NOTHING`,
  },
  moveIdentities: {
    sqlite: 'UPDATE identities SET profile_id = ? WHERE profile_id = ?',
    postgres: 'UPDATE identities SET profile_id = $1 WHERE profile_id = $2',
  },
  moveEvents: {
    sqlite: 'UPDATE events SET profile_id = ? WHERE profile_id = ?',
    postgres: 'UPDATE events SET profile_id = $1 WHERE profile_id = $2',
  },
  moveHistory: {
    sqlite: 'UPDATE membership_history SET profile_id = ? WHERE profile_id = ?',
    postgres: 'UPDATE membership_history SET profile_id = $1 WHERE profile_id = $2',
  },
  dropMemberships: {
    sqlite: 'DELETE FROM memberships WHERE profile_id = ? RETURNING audience_id AS "audienceId"',
    postgres: 'DELETE FROM memberships WHERE profile_id = $1 RETURNING audience_id AS "audienceId"',
  },
  deleteProfile: {
    sqlite: 'DELETE FROM profiles WHERE id = ?',
    postgres: 'DELETE FROM profiles WHERE id = $1',
  },
  identityCounts: {
    sqlite: `SELECT profile_id AS "profileId", count(*) AS n FROM identities
      WHERE profile_id IN (SELECT value FROM json_each(?)) GROUP BY profile_id`,
    postgres: `SELECT profile_id AS "profileId", count(*) AS n FROM identities
      WHERE profile_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb)))
      GROUP BY profile_id`,
  },
  attributesForUpdateOf: {
    sqlite: `SELECT id, json(attributes) AS attributes FROM profiles
      WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT id, CAST(attributes AS text) AS attributes FROM profiles
      WHERE id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb))) ORDER BY id FOR UPDATE`,
  },
  setAttributesOf: {
    sqlite: `UPDATE profiles SET attributes = jsonb(u.value ->> '$[1]'), updated_at = ?
      FROM json_each(?) AS u WHERE profiles.id = u.value ->> '$[0]'`,
    postgres: `UPDATE profiles SET attributes = CAST(u.x ->> 1 AS jsonb), updated_at = $1
      FROM jsonb_array_elements(CAST($2 AS jsonb)) AS u(x) WHERE profiles.id = CAST(u.x ->> 0 AS bigint)`,
  },
  insertProfiles: {
    sqlite: `INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at)
      SELECT ?, jsonb(a.value), ?, ? FROM json_each(?) AS a ORDER BY a.key RETURNING id`,
    postgres: `INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at)
      SELECT $1, a.value, $2, $3 FROM jsonb_array_elements(CAST($4 AS jsonb)) WITH ORDINALITY AS a(value, n)
      ORDER BY a.n RETURNING id`,
  },
  insertIdentities: {
    // SQLite reads "ON" after a FROM as a join's unless a WHERE comes first.
    sqlite: `INSERT INTO identities (sandbox_id, namespace, value, profile_id, created_at)
      SELECT ?, i.value ->> '$[0]', i.value ->> '$[1]', i.value ->> '$[2]', ? FROM json_each(?) AS i WHERE true
      ON CONFLICT DO NOTHING RETURNING namespace, value`,
    postgres: `INSERT INTO identities (sandbox_id, namespace, value, profile_id, created_at)
      SELECT $1, i ->> 0, i ->> 1, CAST(i ->> 2 AS bigint), $2 FROM jsonb_array_elements(CAST($3 AS jsonb)) AS i
      ON CONFLICT DO NOTHING RETURNING namespace, value`,
  },
  insertEvents: {
    sqlite: `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
      SELECT ?, e.value ->> '$[0]', e.value ->> '$[1]', e.value ->> '$[2]', e.value ->> '$[3]',
        jsonb(e.value ->> '$[4]'), ?
      FROM json_each(?) AS e WHERE true ORDER BY e.key
      ON CONFLICT (sandbox_id, event_id) DO NOTHING RETURNING id, event_id AS "eventId"`,
    postgres: `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
      SELECT $1, CAST(e.x ->> 0 AS bigint), CAST(e.x ->> 1 AS bigint), e.x ->> 2, e.x ->> 3,
        CAST(e.x ->> 4 AS jsonb), $2
      FROM jsonb_array_elements(CAST($3 AS jsonb)) WITH ORDINALITY AS e(x, n) ORDER BY e.n
      ON CONFLICT (sandbox_id, event_id) DO NOTHING RETURNING id, event_id AS "eventId"`,
  },
});

/** RFC 7396: `patch` applied to `target`. Keys are set as own data properties, never through a setter. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base = target !== null && typeof target === 'object' && !Array.isArray(target) ? target : {};
  const out: Record<string, unknown> = {};
  const put = (key: string, value: unknown) =>
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  for (const [key, value] of Object.entries(base)) put(key, value);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else put(key, mergePatch(Object.hasOwn(out, key) ? out[key] : undefined, value));
  }
  return out;
}

export interface PooledIngestOptions {
  /** The sandbox's field catalogue, read by the caller (it is cached per store). */
  catalog: FieldCatalog;
  limits?: IngestLimits;
  now?: number;
  /**
   * Runs inside the ingest's unit once its rows are written, with the profiles it changed: the
   * step that must commit with them (streaming: segmentProfilesPooled in streaming-pooled.ts).
   * A throw rolls the ingest back.
   */
  inUnit?: (tx: UnitOf<Store>, changed: ChangedProfiles) => Promise<void>;
}

/** What an ingest hands the step it runs inside its unit, as SQLite's ingest hands its hook. */
export interface ChangedProfiles {
  /** Every profile a record landed on, or that gained an event. */
  profileIds: number[];
  /** Events only: per profile that existed before, the types of the events it gained. */
  added?: AddedEventTypes;
  /** Events only: the events stored, per profile. */
  written?: WrittenEvents;
  /** Identities stored for the first time (an external audience's list may name them). */
  newIdentities: { namespace: string; value: string; profileId: number }[];
  now: number;
}

/** What an ingest changed, for the streaming step and the external audiences' pending members. */
export interface ProfilesIngested {
  result: IngestResult;
  /** Every profile a record landed on, once. */
  changed: number[];
  /** Identities stored for the first time. */
  added: { namespace: string; value: string; profileId: number }[];
}

/**
 * A record written with others of its request: a new profile (`profileId` undefined), or the
 * update of one stored profile no earlier record of the request touched. Its identities each once.
 */
interface Waiting {
  profileId: number | undefined;
  identities: { namespace: string; id: string }[];
  attributes: unknown;
}

const identityKey = (namespace: string, value: string) => `${namespace}\u0000${value}`;

/**
 * Ingests profile records in one unit: each record merges into the profile its identities name
 * (joining several into the one with the lowest id), or makes a new one. Bad records are
 * reported by index and skipped; the rest land together or not at all.
 *
 * On the pool every statement is a round trip, so the identities of the whole request, and how
 * many identities each profile they name holds, are read up front. Then the common records wait
 * to be written together (`writeTogether`): a new profile (none of its identities stored or
 * named by an earlier record of the request), and the update of one stored profile that no
 * earlier record named (its identities and attributes are still as read). A record that may
 * stitch, or that meets what an earlier one wrote, is written alone as before, after the waiting
 * ones: ids are handed out, and each record sees the ones before it, in the request's order.
 */
export async function ingestProfilesPooled(
  store: Store,
  sandboxId: number,
  records: ProfileRecord[],
  options: PooledIngestOptions,
): Promise<ProfilesIngested> {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  // Taken once the unit holds the sandbox's ingest lock: the instant its changes carry, in commit
  // order across nodes (a request that waited for another's unit is not stamped before it).
  let now = options.now ?? 0;
  if (records.length > limits.maxBatch) {
    throw badInput(`At most ${limits.maxBatch} records per call, got ${records.length}`, 'records');
  }
  const result: IngestResult = { accepted: 0, rejected: 0, duplicates: 0, errors: [], profileIds: [] };
  const changed = new Set<number>();
  const added: ProfilesIngested['added'] = [];
  const landed = (profileId: number, stored: ProfilesIngested['added']) => {
    added.push(...stored);
    changed.add(profileId);
    result.accepted++;
    result.profileIds.push(profileId);
  };
  await writeUnit(
    store,
    async (tx) => {
      now = options.now ?? Date.now();
      const checked = records.map((record) => checkProfileRecord(record, options.catalog, limits));
      const found = await identitiesStored(
        tx,
        sandboxId,
        checked.flatMap((c) => (c.ok ? c.identities : [])),
      );
      const storedOn = new Map(found.map((r) => [identityKey(r.namespace, r.value), r.profileId]));
      const identityCount = await identityCounts(tx, [...new Set(storedOn.values())]);
      // Identities named and stored profiles met by the records so far, in the request's order.
      const named = new Set<string>();
      const met = new Set<number>();
      let waiting: Waiting[] = [];
      const writeWaiting = async () => {
        if (waiting.length === 0) return;
        for (const w of await writeTogether(tx, sandboxId, waiting, now)) landed(w.profileId, w.added);
        waiting = [];
      };
      for (const [index, c] of checked.entries()) {
        if (!c.ok) {
          result.rejected++;
          result.errors.push({ index, message: c.message, code: c.code });
          continue;
        }
        const once = new Map(c.identities.map((i) => [identityKey(i.namespace, i.id), i]));
        const keys = [...once.keys()];
        const fresh = keys.every((k) => !named.has(k));
        const profiles = new Set(keys.flatMap((k) => (storedOn.has(k) ? [storedOn.get(k)!] : [])));
        const untouched = [...profiles].every((p) => !met.has(p));
        for (const k of keys) named.add(k);
        for (const p of profiles) met.add(p);
        if (fresh && untouched && profiles.size <= 1) {
          const [profileId] = profiles;
          if (profileId !== undefined) {
            const unseen = keys.filter((k) => !storedOn.has(k)).length;
            const refused = mergedIdentitiesRefusal(identityCount.get(profileId)! + unseen, limits);
            if (refused) {
              result.rejected++;
              result.errors.push({ index, message: refused, code: 'GUARDRAIL' });
              continue;
            }
          }
          waiting.push({ profileId, identities: [...once.values()], attributes: c.attributes });
          continue;
        }
        await writeWaiting();
        const outcome = await ingestRecord(tx, sandboxId, c.identities, c.attributes, limits, now);
        if (!outcome.ok) {
          result.rejected++;
          result.errors.push({ index, message: outcome.message, code: 'GUARDRAIL' });
          continue;
        }
        landed(outcome.profileId, outcome.added);
      }
      await writeWaiting();
      await options.inUnit?.(tx, { profileIds: [...changed], newIdentities: added, now });
    },
    { lock: ingestLock(sandboxId) },
  );
  return { result, changed: [...changed], added };
}

/** The stored identities among `identities`, in one statement. */
async function identitiesStored(
  tx: Store,
  sandboxId: number,
  identities: readonly { namespace: string; id: string }[],
): Promise<{ profileId: number; namespace: string; value: string }[]> {
  if (identities.length === 0) return [];
  const named = JSON.stringify(identities.map((i) => [i.namespace, i.id]));
  return tx.all(q.profilesOfIdentities, [sandboxId, named]);
}

/** How many identities each profile holds, in one statement. */
async function identityCounts(tx: Store, profileIds: readonly number[]): Promise<Map<number, number>> {
  if (profileIds.length === 0) return new Map();
  const rows = await tx.all<{ profileId: number; n: number }>(q.identityCounts, [JSON.stringify(profileIds)]);
  return new Map(rows.map((r) => [Number(r.profileId), Number(r.n)]));
}

/**
 * New profiles and updates of stored ones, in at most four statements whatever their number:
 * the new profiles in one insert of rows in the order given (so their ids, sorted, are theirs in
 * that order), the updated profiles' attributes read and written in one statement each, then
 * every identity in one insert. No two of them share an identity or a profile.
 */
async function writeTogether(
  tx: Store,
  sandboxId: number,
  waiting: readonly Waiting[],
  now: number,
): Promise<{ profileId: number; added: ProfilesIngested['added'] }[]> {
  const made = await insertProfileRows(
    tx,
    sandboxId,
    waiting.filter((w) => w.profileId === undefined).map((w) => mergePatch({}, w.attributes)),
    now,
  );
  const updates = waiting.filter((w) => w.profileId !== undefined);
  if (updates.length > 0) {
    const rows = await tx.all<{ id: number; attributes: string }>(q.attributesForUpdateOf, [
      JSON.stringify(updates.map((w) => w.profileId)),
    ]);
    const before = new Map(rows.map((r) => [Number(r.id), JSON.parse(r.attributes) as unknown]));
    const merged = updates.map((w) => [
      w.profileId,
      JSON.stringify(mergePatch(before.get(w.profileId!), w.attributes)),
    ]);
    await tx.run(q.setAttributesOf, [now, JSON.stringify(merged)]);
  }
  let next = 0;
  const landed = waiting.map((w) => {
    const profileId = w.profileId ?? made[next++]!;
    return { profileId, rows: w.identities.map((i) => ({ namespace: i.namespace, value: i.id, profileId })) };
  });
  // A stored identity of an updated profile is not inserted again: only what the insert reports
  // counts as stored for the first time, as the record-by-record path counts it.
  const inserted = new Set(
    (
      await insertIdentities(
        tx,
        sandboxId,
        landed.flatMap((l) => l.rows),
        now,
      )
    ).map((r) => identityKey(r.namespace, r.value)),
  );
  return landed.map(({ profileId, rows }) => ({
    profileId,
    added: rows.filter((r) => inserted.has(identityKey(r.namespace, r.value))),
  }));
}

/** Profiles with these attributes, in one insert; their ids in the order given. */
async function insertProfileRows(tx: Store, sandboxId: number, attributes: unknown[], now: number): Promise<number[]> {
  if (attributes.length === 0) return [];
  const ids = (await tx.all<{ id: number }>(q.insertProfiles, [sandboxId, now, now, JSON.stringify(attributes)]))
    .map((r) => Number(r.id))
    .sort((x, y) => x - y);
  if (ids.length !== attributes.length)
    throw new Error(`${attributes.length} profiles inserted, ${ids.length} ids back`);
  return ids;
}

async function insertIdentities(
  tx: Store,
  sandboxId: number,
  rows: readonly { namespace: string; value: string; profileId: number }[],
  now: number,
): Promise<{ namespace: string; value: string }[]> {
  if (rows.length === 0) return [];
  const json = JSON.stringify(rows.map((r) => [r.namespace, r.value, r.profileId]));
  return tx.all(q.insertIdentities, [sandboxId, now, json]);
}

/**
 * One record whose identities may name stored profiles or earlier records of the request,
 * written alone: merged into the profile they name, stitching several into the one with the
 * lowest id, or made a new profile; refused when the joined profile would hold too many
 * identities.
 */
async function ingestRecord(
  tx: UnitOf<Store>,
  sandboxId: number,
  identities: readonly { namespace: string; id: string }[],
  attributes: unknown,
  limits: IngestLimits,
  now: number,
): Promise<{ ok: true; profileId: number; added: ProfilesIngested['added'] } | { ok: false; message: string }> {
  const found = await identitiesStored(tx, sandboxId, identities);
  const matched = [...new Set(found.map((r) => r.profileId))];
  if (matched.length > 0) {
    // The identities the joined profile would have: those stored on the profiles found,
    // and those of the record not stored yet.
    const stored = (await tx.get<{ n: number }>(q.countIdentities, [JSON.stringify(matched)]))!.n;
    const seen = new Set(found.map((r) => identityKey(r.namespace, r.value)));
    const unseen = new Set(identities.map((i) => identityKey(i.namespace, i.id)).filter((k) => !seen.has(k))).size;
    const refused = mergedIdentitiesRefusal(stored + unseen, limits);
    if (refused) return { ok: false, message: refused };
  }
  let profileId: number;
  if (matched.length === 0) {
    const document = JSON.stringify(mergePatch({}, attributes));
    profileId = (await tx.get<{ id: number }>(q.insertProfile, [sandboxId, document, now, now]))!.id;
  } else {
    profileId = matched[0]!;
    let merged = await attributesOf(tx, profileId);
    // Stitching: the others' attributes merge in id order, then the record's.
    for (const other of matched.slice(1)) {
      merged = mergePatch(merged, await attributesOf(tx, other));
      await tx.run(q.moveIdentities, [profileId, other]);
      await tx.run(q.moveEvents, [profileId, other]);
      await tx.run(q.moveHistory, [profileId, other]);
      for (const { audienceId } of await tx.all<{ audienceId: number }>(q.dropMemberships, [other]))
        await refreshAudienceSize(tx, audienceId);
      await tx.run(q.deleteProfile, [other]);
    }
    merged = mergePatch(merged, attributes);
    await tx.run(q.setAttributes, [JSON.stringify(merged), now, profileId]);
  }
  const added: ProfilesIngested['added'] = [];
  for (const { namespace, id } of identities) {
    if ((await tx.run(q.insertIdentity, [sandboxId, namespace, id, profileId, now])).changes > 0) {
      added.push({ namespace, value: id, profileId });
    }
  }
  return { ok: true, profileId, added };
}

async function attributesOf(tx: Store, profileId: number): Promise<unknown> {
  const row = await tx.get<{ attributes: string }>(q.attributesForUpdate, [profileId]);
  return JSON.parse(row!.attributes) as unknown;
}

/** What an event ingest changed, as the synchronous ingest hands it to the streaming step. */
export interface EventsIngested {
  result: IngestResult;
  /** Profiles that gained an event. */
  touched: number[];
  /** Profiles the ingest made (an identity seen for the first time). */
  created: number[];
  added: { namespace: string; value: string; profileId: number }[];
  /** Per profile that existed before, the types of the events it gained. */
  addedTypes: Map<number, Set<string>>;
  /** The events stored, per profile, in the order they were written. */
  written: Map<number, WrittenEvent[]>;
}

/**
 * Ingests one request's events in one unit. An event names its profile by identity; an identity
 * seen for the first time makes a new profile. An event id already stored is accepted and
 * counted as a duplicate, not stored twice. The profiles' rows are not written for their events
 * (event-ingest.ts says why).
 *
 * A request costs the same few statements however many events it holds: one read of every
 * identity it names, the new profiles and their identities in one insert each, the events in one
 * insert (its rows in the request's order, so ids are handed out, and spent on duplicates, as
 * event by event).
 */
export async function ingestEventsPooled(
  store: Store,
  sandboxId: number,
  events: EventInput[],
  options: PooledIngestOptions,
): Promise<EventsIngested> {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  // Taken once the unit holds the sandbox's ingest lock: the instant its changes carry, in commit
  // order across nodes (a request that waited for another's unit is not stamped before it).
  let now = options.now ?? 0;
  if (events.length > limits.maxBatch) {
    throw badInput(`At most ${limits.maxBatch} events per call, got ${events.length}`, 'events');
  }
  const out: EventsIngested = {
    result: { accepted: 0, rejected: 0, duplicates: 0, errors: [], profileIds: [] },
    touched: [],
    created: [],
    added: [],
    addedTypes: new Map(),
    written: new Map(),
  };
  const { result } = out;
  await writeUnit(
    store,
    async (tx) => {
      now = options.now ?? Date.now();
      const checked = events.map((event) => checkEvent(event, options.catalog, limits));
      const accepted = events.flatMap((event, index) => {
        const c = checked[index]!;
        return c.ok
          ? [{ event, ts: c.ts, payloadJson: JSON.stringify(c.data), eventId: event.id ?? timeOrderedId() }]
          : [];
      });
      const profileOf = new Map<string, number>();
      for (const r of await identitiesStored(
        tx,
        sandboxId,
        accepted.map((a) => a.event.identity),
      )) {
        profileOf.set(identityKey(r.namespace, r.value), r.profileId);
      }
      // Identities never seen, in the order the request first names them: a new profile each.
      const unseen = new Map<string, { namespace: string; value: string }>();
      for (const { event } of accepted) {
        const key = identityKey(event.identity.namespace, event.identity.id);
        if (!profileOf.has(key) && !unseen.has(key))
          unseen.set(key, { namespace: event.identity.namespace, value: event.identity.id });
      }
      const created = new Set<number>();
      if (unseen.size > 0) {
        const keys = [...unseen.keys()];
        const ids = await insertProfileRows(
          tx,
          sandboxId,
          keys.map(() => ({})),
          now,
        );
        for (const [n, key] of keys.entries()) {
          profileOf.set(key, ids[n]!);
          created.add(ids[n]!);
          out.added.push({ ...unseen.get(key)!, profileId: ids[n]! });
        }
        await insertIdentities(tx, sandboxId, out.added, now);
      }
      const rows = accepted.map((a) => [
        profileOf.get(identityKey(a.event.identity.namespace, a.event.identity.id))!,
        a.ts,
        a.event.eventType,
        a.eventId,
        a.payloadJson,
      ]);
      // An event id the insert skipped is stored already, or by an earlier event of the request.
      const storedAs = new Map<string, number>();
      if (rows.length > 0) {
        for (const r of await tx.all<{ id: number; eventId: string }>(q.insertEvents, [
          sandboxId,
          now,
          JSON.stringify(rows),
        ]))
          storedAs.set(r.eventId, Number(r.id));
      }
      const touched = new Set<number>();
      let next = 0;
      for (const [index, event] of events.entries()) {
        const c = checked[index]!;
        if (!c.ok) {
          result.rejected++;
          result.errors.push({ index, message: c.message, code: c.code });
          continue;
        }
        const { eventId, ts, payloadJson } = accepted[next]!;
        const profileId = rows[next]![0] as number;
        next++;
        const id = storedAs.get(eventId);
        storedAs.delete(eventId);
        if (id === undefined) result.duplicates++;
        else {
          const written = { id, timestamp: ts, eventType: event.eventType, payloadJson };
          const list = out.written.get(profileId);
          if (list) list.push(written);
          else out.written.set(profileId, [written]);
          touched.add(profileId);
          if (!created.has(profileId)) {
            const types = out.addedTypes.get(profileId);
            if (types) types.add(event.eventType);
            else out.addedTypes.set(profileId, new Set([event.eventType]));
          }
        }
        result.accepted++;
        result.profileIds.push(profileId);
      }
      out.touched = [...touched];
      out.created = [...created];
      await options.inUnit?.(tx, {
        profileIds: out.touched,
        added: out.addedTypes,
        written: out.written,
        newIdentities: out.added,
        now,
      });
    },
    { lock: ingestLock(sandboxId) },
  );
  return out;
}
