/**
 * Profiles and events into a pooled database (PostgreSQL), statement by awaited statement inside
 * a unit of work: the same input gives the same profiles, identities, stitching and events as the
 * synchronous ingest of profile-ingest.ts and event-ingest.ts, which stays SQLite's hot path on
 * its ingest thread. The checks are theirs (`checkProfileRecord`, `checkEvent`); what differs is
 * only how the rows are written. What an ingest changed is returned for the steps that follow
 * it (streaming, pending external members), which the caller runs.
 *
 * Attributes merge as JSON merge patches (RFC 7396: objects merge, `null` removes a field,
 * anything else replaces) computed here rather than by the database, since PostgreSQL has no
 * merge patch of its own; the profile row is read `FOR UPDATE` first. Ingests of one sandbox take
 * one lock of the cluster for their transaction, so two nodes cannot both find an identity new
 * and make two profiles of it, as SQLite's one writer cannot.
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from '../config.js';
import { statements } from '../db/statement.js';
import type { Store, UnitLock } from '../db/store.js';
import { type UnitOf, writeUnit } from '../db/unit.js';
import type { FieldCatalog } from '../pql/index.js';
import { refreshAudienceSize } from './audiences.js';
import { badInput } from './errors.js';
import { checkEvent } from './event-ingest.js';
import {
  type AddedEventTypes,
  checkProfileRecord,
  type EventInput,
  type IngestErrorCode,
  type IngestResult,
  mergedIdentitiesRefusal,
  type ProfileRecord,
} from './profile-ingest.js';
import { profileIdByIdentity } from './profiles.js';
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
  insertEvent: {
    sqlite: `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
      VALUES (?, ?, ?, ?, ?, jsonb(?), ?) ON CONFLICT (sandbox_id, event_id) DO NOTHING RETURNING id`,
    postgres: `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
      VALUES ($1, $2, $3, $4, $5, CAST($6 AS jsonb), $7) ON CONFLICT (sandbox_id, event_id) DO NOTHING RETURNING id`,
  },
  touchProfile: {
    sqlite: 'UPDATE profiles SET updated_at = ? WHERE id = ? AND updated_at < ?',
    postgres: 'UPDATE profiles SET updated_at = $1 WHERE id = $2 AND updated_at < $3',
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
 * Ingests profile records in one unit: each record merges into the profile its identities name
 * (joining several into the one with the lowest id), or makes a new one. Bad records are
 * reported by index and skipped; the rest land together or not at all.
 */
export async function ingestProfilesPooled(
  store: Store,
  sandboxId: number,
  records: ProfileRecord[],
  options: PooledIngestOptions,
): Promise<ProfilesIngested> {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  const now = options.now ?? Date.now();
  if (records.length > limits.maxBatch) {
    throw badInput(`At most ${limits.maxBatch} records per call, got ${records.length}`, 'records');
  }
  const result: IngestResult = { accepted: 0, rejected: 0, duplicates: 0, errors: [], profileIds: [] };
  const reject = (index: number, message: string, code: IngestErrorCode) => {
    result.rejected++;
    result.errors.push({ index, message, code });
  };
  const changed = new Set<number>();
  const added: ProfilesIngested['added'] = [];
  await writeUnit(
    store,
    async (tx) => {
      for (const [index, record] of records.entries()) {
        const checked = checkProfileRecord(record, options.catalog, limits);
        if (!checked.ok) {
          reject(index, checked.message, checked.code);
          continue;
        }
        const { identities } = checked;
        const key = (namespace: string, value: string) => `${namespace}\u0000${value}`;
        const named = JSON.stringify(identities.map((i) => [i.namespace, i.id]));
        const found = await tx.all<{ profileId: number; namespace: string; value: string }>(q.profilesOfIdentities, [
          sandboxId,
          named,
        ]);
        const matched = [...new Set(found.map((r) => r.profileId))];
        if (matched.length > 0) {
          // The identities the joined profile would have: those stored on the profiles found,
          // and those of the record not stored yet.
          const stored = (await tx.get<{ n: number }>(q.countIdentities, [JSON.stringify(matched)]))!.n;
          const seen = new Set(found.map((r) => key(r.namespace, r.value)));
          const unseen = new Set(identities.map((i) => key(i.namespace, i.id)).filter((k) => !seen.has(k))).size;
          const refused = mergedIdentitiesRefusal(stored + unseen, limits);
          if (refused) {
            reject(index, refused, 'GUARDRAIL');
            continue;
          }
        }
        let profileId: number;
        if (matched.length === 0) {
          const attributes = JSON.stringify(mergePatch({}, checked.attributes));
          profileId = (await tx.get<{ id: number }>(q.insertProfile, [sandboxId, attributes, now, now]))!.id;
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
          merged = mergePatch(merged, checked.attributes);
          await tx.run(q.setAttributes, [JSON.stringify(merged), now, profileId]);
        }
        for (const { namespace, id } of identities) {
          if ((await tx.run(q.insertIdentity, [sandboxId, namespace, id, profileId, now])).changes > 0) {
            added.push({ namespace, value: id, profileId });
          }
        }
        changed.add(profileId);
        result.accepted++;
        result.profileIds.push(profileId);
      }
      await options.inUnit?.(tx, { profileIds: [...changed], newIdentities: added, now });
    },
    { lock: ingestLock(sandboxId) },
  );
  return { result, changed: [...changed], added };
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
 * counted as a duplicate, not stored twice. Each touched profile's `updated_at` is set once.
 */
export async function ingestEventsPooled(
  store: Store,
  sandboxId: number,
  events: EventInput[],
  options: PooledIngestOptions,
): Promise<EventsIngested> {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  const now = options.now ?? Date.now();
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
      const profileOf = new Map<string, number>();
      const created = new Set<number>();
      const touched = new Set<number>();
      for (const [index, event] of events.entries()) {
        const checked = checkEvent(event, options.catalog, limits);
        if (!checked.ok) {
          result.rejected++;
          result.errors.push({ index, message: checked.message, code: checked.code });
          continue;
        }
        const { namespace, id } = event.identity;
        const key = `${namespace}\u0000${id}`;
        let profileId = profileOf.get(key) ?? (await profileIdByIdentity(tx, sandboxId, event.identity));
        if (profileId === undefined) {
          profileId = (await tx.get<{ id: number }>(q.insertProfile, [sandboxId, '{}', now, now]))!.id;
          created.add(profileId);
          await tx.run(q.insertIdentity, [sandboxId, namespace, id, profileId, now]);
          out.added.push({ namespace, value: id, profileId });
        }
        profileOf.set(key, profileId);
        const payloadJson = JSON.stringify(checked.data);
        const stored = await tx.get<{ id: number }>(q.insertEvent, [
          sandboxId,
          profileId,
          checked.ts,
          event.eventType,
          event.id ?? randomUUID(),
          payloadJson,
          now,
        ]);
        if (!stored) result.duplicates++;
        else {
          const written = { id: stored.id, timestamp: checked.ts, eventType: event.eventType, payloadJson };
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
      for (const profileId of touched) await tx.run(q.touchProfile, [now, profileId, now]);
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
