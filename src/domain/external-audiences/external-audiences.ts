/**
 * External audiences: audiences of origin CUSTOM_UPLOAD whose members come from uploaded lists
 * (ingestion runs, ingestion-run.ts), described by the typed columns of those lists.
 */
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { writeUnit } from '../../db/unit.js';
import {
  type Audience,
  applyAudienceChanges,
  assertNoDependents,
  insertAudience,
  removeAudienceRows,
  requireAudience,
} from '../audiences.js';
import { badInput, conflict, notFound } from '../errors.js';
import { encodeGlobalId } from '../ids.js';
import type { LifecycleState } from '../lifecycle.js';
import { identityProblem } from '../profile-ingest.js';

export const EXTERNAL_FIELD_TYPES = ['STRING', 'NUMBER', 'BOOLEAN', 'DATE'] as const;
export type ExternalFieldType = (typeof EXTERNAL_FIELD_TYPES)[number];

/** Columns a list may have (the identity column included). */
export const MAX_EXTERNAL_FIELDS = 25;
export const DEFAULT_TTL_DAYS = 30;
const MAX_TTL_DAYS = 90;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

export interface ExternalAudienceField {
  name: string;
  type: ExternalFieldType;
  /** Set on exactly one field: the identity namespace its values belong to. */
  identityNamespace: string | null;
}

export interface ExternalAudience {
  id: number;
  sandboxId: number;
  audienceId: number;
  externalId: string | null;
  fields: ExternalAudienceField[];
  identityField: string;
  identityNamespace: string;
  ttlInDays: number;
  version: number;
  createdAt: number;
  updatedAt: number;
}

const COLUMNS = `id, sandbox_id AS "sandboxId", audience_id AS "audienceId", external_id AS "externalId", fields,
  identity_field AS "identityField", identity_namespace AS "identityNamespace", ttl_in_days AS "ttlInDays", version,
  created_at AS "createdAt", updated_at AS "updatedAt"`;
const E_COLUMNS = `e.id, e.sandbox_id AS "sandboxId", e.audience_id AS "audienceId", e.external_id AS "externalId",
  e.fields, e.identity_field AS "identityField", e.identity_namespace AS "identityNamespace",
  e.ttl_in_days AS "ttlInDays", e.version, e.created_at AS "createdAt", e.updated_at AS "updatedAt"`;

const q = statements('external-audiences', {
  /**
   * The sandbox's external audiences among the ids of the JSON array, by id. `+sandbox_id` and `ORDER BY id`:
   * see audiences' byIds (src/domain/audiences.ts).
   */
  byIds: {
    sqlite: `SELECT ${COLUMNS} FROM external_audiences WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${COLUMNS} FROM external_audiences
      WHERE sandbox_id = $1 AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY id`,
  },
  ofAudience: {
    sqlite: `SELECT ${COLUMNS} FROM external_audiences WHERE sandbox_id = ? AND audience_id = ?`,
    postgres: `SELECT ${COLUMNS} FROM external_audiences WHERE sandbox_id = $1 AND audience_id = $2`,
  },
  /**
   * By the creator's id or the audience's name key (the lowercased reference): the one whose
   * externalId it is first (a null externalId last on both), then the oldest.
   */
  find: {
    sqlite: `SELECT ${E_COLUMNS} FROM external_audiences e JOIN audiences a ON a.id = e.audience_id
      WHERE e.sandbox_id = ? AND (e.external_id = ? OR a.name_key = ?) ORDER BY e.external_id = ? DESC, e.id LIMIT 1`,
    postgres: `SELECT ${E_COLUMNS} FROM external_audiences e JOIN audiences a ON a.id = e.audience_id
      WHERE e.sandbox_id = $1 AND (e.external_id = $2 OR a.name_key = $3)
      ORDER BY e.external_id = $4 DESC NULLS LAST, e.id LIMIT 1`,
  },
  /** The external audience that has this externalId, if any. */
  byExternalId: {
    sqlite: 'SELECT id FROM external_audiences WHERE sandbox_id = ? AND external_id = ?',
    postgres: 'SELECT id FROM external_audiences WHERE sandbox_id = $1 AND external_id = $2',
  },
  insert: {
    sqlite: `INSERT INTO external_audiences (sandbox_id, audience_id, external_id, fields, identity_field,
        identity_namespace, ttl_in_days, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
      RETURNING id`,
    postgres: `INSERT INTO external_audiences (sandbox_id, audience_id, external_id, fields, identity_field,
        identity_namespace, ttl_in_days, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)
      RETURNING id`,
  },
  update: {
    sqlite:
      'UPDATE external_audiences SET ttl_in_days = ?, external_id = ?, version = version + 1, updated_at = ? WHERE id = ?',
    postgres:
      'UPDATE external_audiences SET ttl_in_days = $1, external_id = $2, version = version + 1, updated_at = $3 WHERE id = $4',
  },
  /** The run of an external audience queued or running (there is at most one); the member read as the index reads it. */
  activeRun: {
    sqlite: `SELECT id FROM jobs WHERE sandbox_id = ? AND kind = 'INGESTION'
      AND status IN ('QUEUED', 'PROCESSING', 'CANCELLING') AND json_extract(input, '$.externalAudienceId') = ? LIMIT 1`,
    postgres: `SELECT id FROM jobs WHERE sandbox_id = $1 AND kind = 'INGESTION'
      AND status IN ('QUEUED', 'PROCESSING', 'CANCELLING')
      AND CAST(input ->> 'externalAudienceId' AS bigint) = $2 LIMIT 1`,
  },
});

type Row = Omit<ExternalAudience, 'fields'> & { fields: string };

const toExternal = (r: Row): ExternalAudience => ({ ...r, fields: JSON.parse(r.fields) as ExternalAudienceField[] });

export async function externalAudiencesByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, ExternalAudience>> {
  const out = new Map<number, ExternalAudience>();
  if (ids.length === 0) return out;
  for (const r of await conn.all<Row>(q.byIds, [sandboxId, JSON.stringify(ids)])) out.set(r.id, toExternal(r));
  return out;
}

export async function requireExternalAudience(conn: Store, sandboxId: number, id: number): Promise<ExternalAudience> {
  const found = (await externalAudiencesByIds(conn, sandboxId, [id])).get(id);
  if (!found) {
    const gid = encodeGlobalId('ExternalAudience', id);
    throw notFound(`No external audience with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

/** The external audience behind an audience of origin CUSTOM_UPLOAD. */
export async function externalAudienceOfAudience(
  conn: Store,
  sandboxId: number,
  audienceId: number,
): Promise<ExternalAudience | undefined> {
  const row = await conn.get<Row>(q.ofAudience, [sandboxId, audienceId]);
  return row ? toExternal(row) : undefined;
}

/** An external audience by the id its creator chose, or by its audience's name (the commercial service's ways to name one). */
export async function findExternalAudience(
  conn: Store,
  sandboxId: number,
  ref: string,
): Promise<ExternalAudience | undefined> {
  const row = await conn.get<Row>(q.find, [sandboxId, ref, ref.toLowerCase(), ref]);
  return row ? toExternal(row) : undefined;
}

export function validFields(fields: readonly ExternalAudienceField[]): {
  fields: ExternalAudienceField[];
  identity: ExternalAudienceField & { identityNamespace: string };
} {
  if (fields.length === 0) throw badInput('Give at least the identity field', 'input.fields');
  if (fields.length > MAX_EXTERNAL_FIELDS) {
    throw badInput(`At most ${MAX_EXTERNAL_FIELDS} fields, got ${fields.length}`, 'input.fields');
  }
  const seen = new Set<string>();
  const out: ExternalAudienceField[] = [];
  fields.forEach((f, i) => {
    const at = `input.fields.${i}`;
    if (!FIELD_NAME.test(f.name)) {
      throw badInput(
        `Field name "${f.name}" must start with a letter or "_" and have at most 64 letters, digits, "_", "." or "-"`,
        at,
      );
    }
    if (seen.has(f.name.toLowerCase())) throw badInput(`Field "${f.name}" is named twice`, at);
    seen.add(f.name.toLowerCase());
    if (!EXTERNAL_FIELD_TYPES.includes(f.type)) throw badInput(`Unknown field type "${f.type}"`, at);
    const namespace = f.identityNamespace ?? null;
    if (namespace !== null) {
      const problem = identityProblem({ namespace, id: 'x' });
      if (problem) throw badInput(`Field "${f.name}": ${problem}`, at);
      if (f.type !== 'STRING') throw badInput(`The identity field "${f.name}" must be a STRING`, at);
    }
    out.push({ name: f.name, type: f.type, identityNamespace: namespace });
  });
  const identities = out.filter((f) => f.identityNamespace !== null);
  if (identities.length !== 1) {
    throw badInput(
      `Exactly one field names an identityNamespace (the column that says who each row is); ${identities.length} do`,
      'input.fields',
    );
  }
  return { fields: out, identity: identities[0] as ExternalAudienceField & { identityNamespace: string } };
}

function validTtl(ttl: number | null | undefined, field: string): number {
  const days = ttl ?? DEFAULT_TTL_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_TTL_DAYS) {
    throw badInput(`ttlInDays must be a whole number from 1 to ${MAX_TTL_DAYS}, got ${days}`, field);
  }
  return days;
}

async function validExternalId(conn: Store, sandboxId: number, externalId: string, exceptId?: number): Promise<string> {
  const trimmed = externalId.trim();
  if (trimmed.length === 0 || trimmed.length > 255)
    throw badInput('externalId is 1 to 255 characters', 'input.externalId');
  const taken = (await conn.get<{ id: number }>(q.byExternalId, [sandboxId, trimmed]))?.id;
  if (taken !== undefined && taken !== exceptId) {
    throw conflict(`Another external audience already has externalId "${trimmed}"`, {
      id: encodeGlobalId('ExternalAudience', taken),
    });
  }
  return trimmed;
}

export interface NewExternalAudience {
  name: string;
  description?: string | null;
  namespace: string;
  fields: ExternalAudienceField[];
  ttlInDays?: number | null;
  labels?: string[] | null;
  externalId?: string | null;
  lifecycleState?: LifecycleState | null;
}

/** Creates an external audience and its Audience (origin CUSTOM_UPLOAD), empty until its first ingestion run. */
export async function createExternalAudience(
  conn: Store,
  sandboxId: number,
  input: NewExternalAudience,
  now = Date.now(),
): Promise<ExternalAudience> {
  const { fields, identity } = validFields(input.fields);
  const ttl = validTtl(input.ttlInDays, 'input.ttlInDays');
  return await writeUnit(conn, async (tx) => {
    const externalId = input.externalId == null ? null : await validExternalId(tx, sandboxId, input.externalId);
    const audience = await insertAudience(
      tx,
      sandboxId,
      {
        name: input.name,
        namespace: input.namespace,
        description: input.description,
        origin: 'CUSTOM_UPLOAD',
        lifecycleState: input.lifecycleState ?? 'PUBLISHED',
        labels: input.labels,
      },
      now,
    );
    const { id } = (await tx.get<{ id: number }>(q.insert, [
      sandboxId,
      audience.id,
      externalId,
      JSON.stringify(fields),
      identity.name,
      identity.identityNamespace,
      ttl,
      now,
      now,
    ]))!;
    return await requireExternalAudience(tx, sandboxId, id);
  });
}

export interface ExternalAudienceChanges {
  name?: string | null;
  description?: string | null;
  labels?: string[] | null;
  lifecycleState?: LifecycleState | null;
  ttlInDays?: number | null;
  /** A new externalId; an empty string removes it. */
  externalId?: string | null;
}

/** Changes an external audience (its fields stay: a list's columns are fixed once rows exist). */
export async function updateExternalAudience(
  conn: Store,
  sandboxId: number,
  id: number,
  changes: ExternalAudienceChanges,
  expectedVersion?: number | null,
  now = Date.now(),
): Promise<ExternalAudience> {
  return await writeUnit(conn, async (tx) => {
    const current = await requireExternalAudience(tx, sandboxId, id);
    if (expectedVersion != null && expectedVersion !== current.version) {
      throw conflict(
        `The external audience is at version ${current.version}, not ${expectedVersion}: reload and try again`,
        { currentVersion: current.version },
      );
    }
    const audience = await requireAudience(tx, sandboxId, current.audienceId);
    await applyAudienceChanges(
      tx,
      audience,
      {
        name: changes.name,
        description: changes.description,
        labels: changes.labels,
        lifecycleState: changes.lifecycleState,
      },
      null,
      now,
    );
    const ttl = changes.ttlInDays == null ? current.ttlInDays : validTtl(changes.ttlInDays, 'input.ttlInDays');
    const externalId =
      changes.externalId === undefined || changes.externalId === null
        ? current.externalId
        : changes.externalId === ''
          ? null
          : await validExternalId(tx, sandboxId, changes.externalId, id);
    await tx.run(q.update, [ttl, externalId, now, id]);
    return await requireExternalAudience(tx, sandboxId, id);
  });
}

/** Deletes an external audience, its list and its audience; CONFLICT while a definition uses it or a run is active. */
export async function deleteExternalAudience(conn: Store, sandboxId: number, id: number): Promise<number> {
  return await writeUnit(conn, async (tx) => {
    const external = await requireExternalAudience(tx, sandboxId, id);
    const audience: Audience = await requireAudience(tx, sandboxId, external.audienceId);
    await assertNoDependents(tx, sandboxId, audience);
    const active = await activeIngestionRun(tx, sandboxId, id);
    if (active !== undefined) {
      throw conflict('An ingestion run of this audience is still running; cancel it or wait for it to end', {
        runId: encodeGlobalId('IngestionRun', active),
      });
    }
    await removeAudienceRows(tx, sandboxId, external.audienceId);
    return id;
  });
}

/** The run of this external audience that is queued or running, if any (there is at most one). */
export async function activeIngestionRun(
  conn: Store,
  sandboxId: number,
  externalAudienceId: number,
): Promise<number | undefined> {
  return (await conn.get<{ id: number }>(q.activeRun, [sandboxId, externalAudienceId]))?.id;
}
