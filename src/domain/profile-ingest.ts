import type { Statement } from 'better-sqlite3';
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from '../config.js';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection, Sqlite } from '../db/index.js';
import type { FieldCatalog } from '../pql/index.js';
import { refreshAudienceSizeSync } from './audiences.js';
import { validateDocument } from './document-validation.js';
import { badInput } from './errors.js';
import { jsonLongerThan } from './json-size.js';
import { catalogOf } from './profile-schema.js';
import type { WrittenEvents } from './streaming-window.js';

export interface IdentityInput {
  namespace: string;
  id: string;
}

export interface ProfileRecord {
  identities: IdentityInput[];
  attributes: unknown;
}

export interface EventInput {
  id?: string | null;
  identity: IdentityInput;
  /**
   * ISO-8601 text, or epoch ms already read from it (GraphQL's DateTime scalar reads the text:
   * reading it again, and writing it back first, was a share of each streamed event's cost).
   */
  timestamp: string | number;
  eventType: string;
  data?: unknown;
}

/** BAD_USER_INPUT: the record is invalid; GUARDRAIL: it is over a size or count guardrail. */
export const INGEST_ERROR_CODES = ['BAD_USER_INPUT', 'GUARDRAIL'] as const;
export type IngestErrorCode = (typeof INGEST_ERROR_CODES)[number];

export interface IngestError {
  index: number;
  message: string;
  code: IngestErrorCode;
}

export interface IngestResult {
  accepted: number;
  rejected: number;
  /** Events whose id was already stored: accepted, stored once. */
  duplicates: number;
  errors: IngestError[];
  /** Per accepted record, in input order. */
  profileIds: number[];
}

/**
 * Per profile, the event types an ingest added when that is all it changed; a profile left out
 * may have changed in any way (new, attributes, stitched).
 */
export type AddedEventTypes = ReadonlyMap<number, ReadonlySet<string>>;

/**
 * Called inside the ingest transaction with the profiles it changed (streaming segmentation hooks
 * in here), for those that only gained events their types, and the events it wrote; what it
 * returns runs once the transaction has committed (to publish what it changed).
 */
export type ProfilesChangedHook = (
  sandboxId: number,
  profileIds: number[],
  now: number,
  added?: AddedEventTypes,
  written?: WrittenEvents,
) => (() => void) | undefined;

/**
 * Called inside the ingest transaction with the identities it stored for the first time (an
 * external audience's list may have named them before their profile arrived).
 */
export type IdentitiesAddedHook = (
  sandboxId: number,
  added: { namespace: string; value: string; profileId: number }[],
  now: number,
) => (() => void) | undefined;

export interface IngestOptions {
  limits?: IngestLimits;
  now?: number;
  onProfilesChanged?: ProfilesChangedHook;
  onIdentitiesAdded?: IdentitiesAddedHook;
}

const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;

/** Checks one identity; returns the reason it is unusable, or undefined. */
export function identityProblem(identity: IdentityInput | undefined): string | undefined {
  if (!identity || typeof identity !== 'object') return 'identity is required';
  if (typeof identity.namespace !== 'string' || identity.namespace.trim() === '') return 'identity namespace is empty';
  if (!NAMESPACE.test(identity.namespace)) {
    return `identity namespace "${identity.namespace}" must be 1-64 characters of letters, digits, "_", "." or "-"`;
  }
  if (typeof identity.id !== 'string' || identity.id === '')
    return `identity id is empty (namespace "${identity.namespace}")`;
  if (identity.id.length > 1024) return 'identity id is longer than 1024 characters';
  return undefined;
}

export function assertIdentity(identity: IdentityInput, field = 'identity'): void {
  const problem = identityProblem(identity);
  if (problem) throw badInput(`Invalid identity: ${problem}`, field);
}

// Statements take positional parameters of any SQLite type.
type Stmt = Statement<any[]>;

export interface IngestStatements {
  findIdentity: Stmt;
  insertProfile: Stmt;
  insertIdentity: Stmt;
  patchProfile: Stmt;
  countIdentities: Stmt;
  insertEvent: Stmt;
  profileAttributes: Stmt;
  patchJson: Stmt;
  moveIdentities: Stmt;
  moveEvents: Stmt;
  moveHistory: Stmt;
  dropMemberships: Stmt;
  deleteProfile: Stmt;
  setAttributes: Stmt;
}

// Ingest is the hottest write path (the seeder pushes millions of rows through it), so it uses
// prepared better-sqlite3 statements directly rather than building Drizzle queries per row.
const INGEST_STATEMENTS = cacheKey<IngestStatements>('ingest statements');

/** The ingest statements of `conn`, prepared once (event-ingest.ts shares them). */
export function ingestStatements(conn: Connection): IngestStatements {
  return conn.cache.get(INGEST_STATEMENTS, () => prepareStatements(conn.sqlite));
}

function prepareStatements(sqlite: Sqlite): IngestStatements {
  const s: IngestStatements = {
    findIdentity: sqlite
      .prepare('SELECT profile_id FROM identities WHERE sandbox_id = ? AND namespace = ? AND value = ?')
      .pluck(),
    insertProfile: sqlite.prepare(
      "INSERT INTO profiles (sandbox_id, attributes, created_at, updated_at) VALUES (?, jsonb_patch(jsonb('{}'), jsonb(?)), ?, ?)",
    ),
    insertIdentity: sqlite.prepare(
      'INSERT OR IGNORE INTO identities (sandbox_id, namespace, value, profile_id, created_at) VALUES (?, ?, ?, ?, ?)',
    ),
    patchProfile: sqlite.prepare(
      'UPDATE profiles SET attributes = jsonb_patch(attributes, jsonb(?)), updated_at = ? WHERE id = ?',
    ),
    countIdentities: sqlite.prepare('SELECT count(*) FROM identities WHERE profile_id = ?').pluck(),
    insertEvent: sqlite.prepare(
      `INSERT INTO events (sandbox_id, profile_id, ts, event_type, event_id, payload, ingested_at)
       VALUES (?, ?, ?, ?, ?, jsonb(?), ?) ON CONFLICT (sandbox_id, event_id) DO NOTHING`,
    ),
    profileAttributes: sqlite.prepare('SELECT json(attributes) FROM profiles WHERE id = ?').pluck(),
    patchJson: sqlite.prepare('SELECT json_patch(?, ?)').pluck(),
    moveIdentities: sqlite.prepare('UPDATE identities SET profile_id = ? WHERE profile_id = ?'),
    moveEvents: sqlite.prepare('UPDATE events SET profile_id = ? WHERE profile_id = ?'),
    moveHistory: sqlite.prepare('UPDATE membership_history SET profile_id = ? WHERE profile_id = ?'),
    dropMemberships: sqlite.prepare('DELETE FROM memberships WHERE profile_id = ? RETURNING audience_id').pluck(),
    deleteProfile: sqlite.prepare('DELETE FROM profiles WHERE id = ?'),
    setAttributes: sqlite.prepare('UPDATE profiles SET attributes = jsonb(?), updated_at = ? WHERE id = ?'),
  };
  return s;
}

/**
 * Joins profiles into the one with the lowest id (identity stitching): attributes merge in
 * update order (later values win per field, arrays replaced), identities, events and history
 * move over. Memberships of the absorbed profiles are dropped: the next evaluation decides
 * the joined profile's memberships from its merged data.
 */
function stitch(conn: Connection, s: IngestStatements, ids: number[]): number {
  const sorted = [...ids].sort((a, b) => a - b);
  const survivor = sorted[0]!;
  let merged = s.profileAttributes.get(survivor) as string;
  for (const other of sorted.slice(1)) {
    merged = s.patchJson.get(merged, s.profileAttributes.get(other) as string) as string;
    s.moveIdentities.run(survivor, other);
    s.moveEvents.run(survivor, other);
    s.moveHistory.run(survivor, other);
    for (const audienceId of s.dropMemberships.all(other) as number[]) refreshAudienceSizeSync(conn, audienceId);
    s.deleteProfile.run(other);
  }
  s.setAttributes.run(merged, Date.now(), survivor);
  return survivor;
}

/** Why joining profiles would be refused: more identities in all than a profile may have (a GUARDRAIL). */
export function mergedIdentitiesRefusal(total: number, limits: IngestLimits): string | undefined {
  return total > limits.identitiesPerProfile
    ? `The merged profile would have more than ${limits.identitiesPerProfile} identities`
    : undefined;
}

/** A record as ingestion takes it, or why it is refused. */
export type CheckedProfileRecord =
  | { ok: true; identities: IdentityInput[]; attributes: unknown }
  | { ok: false; message: string; code: IngestErrorCode };

/**
 * The checks a profile record passes before anything is stored, the same whichever database
 * stores it: size and identity guardrails, identities, attributes against the field catalogue.
 */
export function checkProfileRecord(
  record: ProfileRecord,
  catalog: FieldCatalog,
  limits: IngestLimits,
): CheckedProfileRecord {
  if (jsonLongerThan(record, limits.profileRecordBytes)) {
    return {
      ok: false,
      message: `Record is larger than the ${limits.profileRecordBytes / 1024} KB guardrail`,
      code: 'GUARDRAIL',
    };
  }
  const identities = Array.isArray(record.identities) ? record.identities : [];
  if (identities.length === 0)
    return { ok: false, message: 'A profile record needs at least one identity', code: 'BAD_USER_INPUT' };
  if (identities.length > limits.identitiesPerProfile) {
    return { ok: false, message: `A profile has at most ${limits.identitiesPerProfile} identities`, code: 'GUARDRAIL' };
  }
  const identityError = identities.map(identityProblem).find((p) => p !== undefined);
  if (identityError) return { ok: false, message: `Invalid identity: ${identityError}`, code: 'BAD_USER_INPUT' };
  const checked = validateDocument(record.attributes, catalog.profile);
  if (!checked.ok) return { ok: false, message: checked.message, code: 'BAD_USER_INPUT' };
  return { ok: true, identities, attributes: checked.value };
}

/**
 * Ingests profile records in one transaction: each record merges into the profile its
 * identities name (joining several into one), or makes a new one. Bad records are reported
 * by index and skipped; the rest land together or not at all.
 */
export function ingestProfiles(
  conn: Connection,
  sandboxId: number,
  records: ProfileRecord[],
  options: IngestOptions = {},
): IngestResult {
  const limits = options.limits ?? DEFAULT_INGEST_LIMITS;
  const now = options.now ?? Date.now();
  if (records.length > limits.maxBatch) {
    throw badInput(`At most ${limits.maxBatch} records per call, got ${records.length}`, 'records');
  }
  const catalog = catalogOf(conn, sandboxId);
  const s = ingestStatements(conn);
  const result: IngestResult = { accepted: 0, rejected: 0, duplicates: 0, errors: [], profileIds: [] };
  const changed = new Set<number>();
  const added: { namespace: string; value: string; profileId: number }[] = [];
  const reject = (index: number, message: string, code: IngestErrorCode = 'BAD_USER_INPUT') => {
    result.rejected++;
    result.errors.push({ index, message, code });
  };

  const after: { commit?: () => void } = {};
  conn.sqlite
    .transaction(() => {
      for (const [index, record] of records.entries()) {
        const checked = checkProfileRecord(record, catalog, limits);
        if (!checked.ok) {
          reject(index, checked.message, checked.code);
          continue;
        }
        const { identities } = checked;
        const attributes = JSON.stringify(checked.attributes);

        const matched = new Set<number>();
        const unseen = new Set<string>();
        for (const { namespace, id } of identities) {
          const pid = s.findIdentity.get(sandboxId, namespace, id) as number | undefined;
          if (pid !== undefined) matched.add(pid);
          else unseen.add(`${namespace}\u0000${id}`);
        }
        if (matched.size > 0) {
          let total = unseen.size;
          for (const pid of matched) total += s.countIdentities.get(pid) as number;
          const refused = mergedIdentitiesRefusal(total, limits);
          if (refused) {
            reject(index, refused, 'GUARDRAIL');
            continue;
          }
        }
        let profileId: number;
        if (matched.size === 0) {
          profileId = Number(s.insertProfile.run(sandboxId, attributes, now, now).lastInsertRowid);
        } else {
          profileId = matched.size === 1 ? [...matched][0]! : stitch(conn, s, [...matched]);
          s.patchProfile.run(attributes, now, profileId);
        }
        for (const { namespace, id } of identities) {
          if (s.insertIdentity.run(sandboxId, namespace, id, profileId, now).changes > 0) {
            added.push({ namespace, value: id, profileId });
          }
        }
        changed.add(profileId);
        result.accepted++;
        result.profileIds.push(profileId);
      }
      // A profile that arrives after a list named it joins before the streaming step sees it.
      const joined = options.onIdentitiesAdded?.(sandboxId, added, now);
      const streamed = options.onProfilesChanged?.(sandboxId, [...changed], now);
      after.commit = () => {
        joined?.();
        streamed?.();
      };
    })
    .immediate();
  after.commit?.();
  return result;
}
