/**
 * External audiences: audiences of origin CUSTOM_UPLOAD whose members come from uploaded lists
 * (ingestion runs, ingestion-run.ts), described by the typed columns of those lists.
 */
import type { Connection } from '../../db/index.js';
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

interface Row {
  id: number;
  sandbox_id: number;
  audience_id: number;
  external_id: string | null;
  fields: string;
  identity_field: string;
  identity_namespace: string;
  ttl_in_days: number;
  version: number;
  created_at: number;
  updated_at: number;
}

const toExternal = (r: Row): ExternalAudience => ({
  id: r.id,
  sandboxId: r.sandbox_id,
  audienceId: r.audience_id,
  externalId: r.external_id,
  fields: JSON.parse(r.fields) as ExternalAudienceField[],
  identityField: r.identity_field,
  identityNamespace: r.identity_namespace,
  ttlInDays: r.ttl_in_days,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function externalAudiencesByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, ExternalAudience>> {
  const out = new Map<number, ExternalAudience>();
  if (ids.length === 0) return out;
  const rows = conn.sqlite
    .prepare('SELECT * FROM external_audiences WHERE sandbox_id = ? AND id IN (SELECT value FROM json_each(?))')
    .all(sandboxId, JSON.stringify(ids)) as Row[];
  for (const r of rows) out.set(r.id, toExternal(r));
  return out;
}

export async function requireExternalAudience(
  conn: Connection,
  sandboxId: number,
  id: number,
): Promise<ExternalAudience> {
  const found = (await externalAudiencesByIds(conn, sandboxId, [id])).get(id);
  if (!found) {
    const gid = encodeGlobalId('ExternalAudience', id);
    throw notFound(`No external audience with id "${gid}" in this sandbox`, gid);
  }
  return found;
}

/** The external audience behind an audience of origin CUSTOM_UPLOAD. */
export async function externalAudienceOfAudience(
  conn: Connection,
  sandboxId: number,
  audienceId: number,
): Promise<ExternalAudience | undefined> {
  const row = conn.sqlite
    .prepare('SELECT * FROM external_audiences WHERE sandbox_id = ? AND audience_id = ?')
    .get(sandboxId, audienceId) as Row | undefined;
  return row ? toExternal(row) : undefined;
}

/** An external audience by the id its creator chose, or by its audience's name (the commercial service's ways to name one). */
export async function findExternalAudience(
  conn: Connection,
  sandboxId: number,
  ref: string,
): Promise<ExternalAudience | undefined> {
  const row = conn.sqlite
    .prepare(
      `SELECT e.* FROM external_audiences e JOIN audiences a ON a.id = e.audience_id
       WHERE e.sandbox_id = ? AND (e.external_id = ? OR a.name_key = ?) ORDER BY e.external_id = ? DESC, e.id LIMIT 1`,
    )
    .get(sandboxId, ref, ref.toLowerCase(), ref) as Row | undefined;
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

async function validExternalId(
  conn: Connection,
  sandboxId: number,
  externalId: string,
  exceptId?: number,
): Promise<string> {
  const trimmed = externalId.trim();
  if (trimmed.length === 0 || trimmed.length > 255)
    throw badInput('externalId is 1 to 255 characters', 'input.externalId');
  const taken = conn.sqlite
    .prepare('SELECT id FROM external_audiences WHERE sandbox_id = ? AND external_id = ?')
    .pluck()
    .get(sandboxId, trimmed) as number | undefined;
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
  conn: Connection,
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
    const id = Number(
      tx.sqlite
        .prepare(
          `INSERT INTO external_audiences (sandbox_id, audience_id, external_id, fields, identity_field, identity_namespace,
             ttl_in_days, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
        )
        .run(
          sandboxId,
          audience.id,
          externalId,
          JSON.stringify(fields),
          identity.name,
          identity.identityNamespace,
          ttl,
          now,
          now,
        ).lastInsertRowid,
    );
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
  conn: Connection,
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
    tx.sqlite
      .prepare(
        'UPDATE external_audiences SET ttl_in_days = ?, external_id = ?, version = version + 1, updated_at = ? WHERE id = ?',
      )
      .run(ttl, externalId, now, id);
    return await requireExternalAudience(tx, sandboxId, id);
  });
}

/** Deletes an external audience, its list and its audience; CONFLICT while a definition uses it or a run is active. */
export async function deleteExternalAudience(conn: Connection, sandboxId: number, id: number): Promise<number> {
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
  conn: Connection,
  sandboxId: number,
  externalAudienceId: number,
): Promise<number | undefined> {
  return conn.sqlite
    .prepare(
      `SELECT id FROM jobs WHERE sandbox_id = ? AND kind = 'INGESTION' AND status IN ('QUEUED', 'PROCESSING', 'CANCELLING')
       AND json_extract(input, '$.externalAudienceId') = ? LIMIT 1`,
    )
    .pluck()
    .get(sandboxId, externalAudienceId) as number | undefined;
}
