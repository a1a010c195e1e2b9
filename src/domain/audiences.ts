import type { Connection } from '../db/index.js';
import { preparedOn, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import { badInput, conflict, notFound } from './errors.js';
import { requireFolder } from './folders.js';
import { encodeGlobalId } from './ids.js';
import { assertLifecycleChange, type LifecycleState } from './lifecycle.js';
import { CURRENT_STATUSES_SQL } from './membership-statuses.js';
import { type OrderDirection, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { assertNoScheduleNames } from './schedules/schedule-references.js';

export const AUDIENCE_ORIGINS = ['SEGMENTATION_SERVICE', 'CUSTOM_UPLOAD', 'MANUAL'] as const;
export type AudienceOrigin = (typeof AUDIENCE_ORIGINS)[number];

export interface Audience {
  id: number;
  sandboxId: number;
  name: string;
  namespace: string;
  description: string | null;
  origin: AudienceOrigin;
  lifecycleState: LifecycleState;
  labels: string[];
  folderId: number | null;
  definitionId: number | null;
  size: number;
  version: number;
  lastEvaluatedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

const SEGQL_NAMESPACE = 'segql';
const NAME_MAX = 255;
const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;

/** An audience as its statements give it: labels as JSON text, and the name key lists order by. */
type AudienceRow = Omit<Audience, 'labels' | 'origin' | 'lifecycleState'> & {
  nameKey: string;
  origin: string;
  lifecycleState: string;
  labels: string;
};

const AUDIENCE = `id, sandbox_id AS "sandboxId", name, name_key AS "nameKey", namespace, description, origin,
  lifecycle_state AS "lifecycleState", labels, folder_id AS "folderId", definition_id AS "definitionId", size, version,
  last_evaluated_at AS "lastEvaluatedAt", created_at AS "createdAt", updated_at AS "updatedAt"`;

/** PostgreSQL's text of a statement written with `?`: each `?` in turn becomes `$1`, `$2`, … */
function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

/**
 * The filters of listAudiences, each off when its value is null; a value comes once for each
 * place it is used (filterParams). The PostgreSQL text casts the values only compared with
 * NULL, and reads the labels (JSON text on both) as jsonb.
 */
const FILTER = `sandbox_id = ?
  AND (? IS NULL OR instr(name_key, ?) > 0)
  AND (? IS NULL OR namespace = ?)
  AND (? IS NULL OR origin = ?)
  AND (? IS NULL OR lifecycle_state = ?)
  AND (? IS NULL OR EXISTS (SELECT 1 FROM json_each(audiences.labels) WHERE value = ?))
  AND (? IS NULL OR folder_id = ?)
  AND (? IS NULL OR EXISTS (SELECT 1 FROM segment_definitions d WHERE d.id = audiences.definition_id
    AND CASE ? WHEN 'BATCH' THEN d.eval_batch WHEN 'STREAMING' THEN d.eval_streaming ELSE d.eval_edge END = 1))
  AND (? IS NULL OR updated_at > ?)`;
const FILTER_PG = `sandbox_id = ?
  AND (CAST(? AS text) IS NULL OR strpos(name_key, ?) > 0)
  AND (CAST(? AS text) IS NULL OR namespace = ?)
  AND (CAST(? AS text) IS NULL OR origin = ?)
  AND (CAST(? AS text) IS NULL OR lifecycle_state = ?)
  AND (CAST(? AS text) IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(audiences.labels AS jsonb)) AS l(value)
    WHERE l.value = ?))
  AND (CAST(? AS bigint) IS NULL OR folder_id = ?)
  AND (CAST(? AS text) IS NULL OR EXISTS (SELECT 1 FROM segment_definitions d WHERE d.id = audiences.definition_id
    AND CASE CAST(? AS text) WHEN 'BATCH' THEN d.eval_batch WHEN 'STREAMING' THEN d.eval_streaming ELSE d.eval_edge END))
  AND (CAST(? AS bigint) IS NULL OR updated_at > ?)`;

/** The sort column of each order; names in byte order on both (SQLite's BINARY, PostgreSQL's "C"). */
const SORT = {
  NAME: { sqlite: 'name_key', postgres: 'name_key COLLATE "C"', cast: 'text' },
  CREATED_AT: { sqlite: 'created_at', postgres: 'created_at', cast: 'bigint' },
  UPDATED_AT: { sqlite: 'updated_at', postgres: 'updated_at', cast: 'bigint' },
  SIZE: { sqlite: 'size', postgres: 'size', cast: 'bigint' },
} as const;

/**
 * A page of audiences in one order, read in ascending or descending (sort value, id): after the
 * filters, the (value, id) the rows lie above and the one they lie below, each off when its value
 * is null (boundParams); then the limit.
 */
function pageText(field: AudienceOrderField, ascending: boolean): { sqlite: string; postgres: string } {
  const dir = ascending ? 'ASC' : 'DESC';
  const lite = SORT[field].sqlite;
  const pg = SORT[field].postgres;
  const cast = SORT[field].cast;
  return {
    sqlite: `SELECT ${AUDIENCE} FROM audiences WHERE ${FILTER}
      AND (? IS NULL OR (${lite}, id) > (?, ?))
      AND (? IS NULL OR (${lite}, id) < (?, ?))
      ORDER BY ${lite} ${dir}, id ${dir} LIMIT ?`,
    postgres: numbered(`SELECT ${AUDIENCE} FROM audiences WHERE ${FILTER_PG}
      AND (CAST(? AS ${cast}) IS NULL OR (${pg}, id) > (?, ?))
      AND (CAST(? AS ${cast}) IS NULL OR (${pg}, id) < (?, ?))
      ORDER BY ${pg} ${dir}, id ${dir} LIMIT ?`),
  };
}

const q = statements('audiences', {
  /**
   * The sandbox's audiences among the ids of the JSON array. `+sandbox_id` keeps SQLite off the
   * sandbox's indexes: with one of them it walked every audience of the sandbox to find the few
   * asked for (100 for 22 in the edge bench, whose every request loads its audiences here).
   * Ordered by id: the lookups otherwise come back in the list's order on SQLite and in a hash's
   * on PostgreSQL, and the two backends answer alike.
   */
  byIds: {
    sqlite: `SELECT ${AUDIENCE} FROM audiences WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${AUDIENCE} FROM audiences WHERE sandbox_id = $1
      AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb))) ORDER BY id`,
  },
  /** The audience of a namespace with this lower-cased name. */
  idByName: {
    sqlite: 'SELECT id FROM audiences WHERE sandbox_id = ? AND namespace = ? AND name_key = ?',
    postgres: 'SELECT id FROM audiences WHERE sandbox_id = $1 AND namespace = $2 AND name_key = $3',
  },
  insert: {
    sqlite: `INSERT INTO audiences (sandbox_id, name, name_key, namespace, description, origin, lifecycle_state, labels,
        folder_id, definition_id, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${AUDIENCE}`,
    postgres: `INSERT INTO audiences (sandbox_id, name, name_key, namespace, description, origin, lifecycle_state, labels,
        folder_id, definition_id, created_at, updated_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ${AUDIENCE}`,
  },
  /** Every changeable column at once, if the audience is still at the version read (last two params). */
  update: {
    sqlite: `UPDATE audiences SET name = ?, name_key = ?, description = ?, lifecycle_state = ?, labels = ?, folder_id = ?,
        version = ?, updated_at = ?
      WHERE id = ? AND version = ? RETURNING ${AUDIENCE}`,
    postgres: `UPDATE audiences SET name = $1, name_key = $2, description = $3, lifecycle_state = $4, labels = $5,
        folder_id = $6, version = $7, updated_at = $8
      WHERE id = $9 AND version = $10 RETURNING ${AUDIENCE}`,
  },
  /** Definitions that name the audiences of the JSON array through inSegment, by definition id. */
  dependents: {
    sqlite: `SELECT audience_id AS "audienceId", definition_id AS "definitionId" FROM definition_dependencies
      WHERE sandbox_id = ? AND audience_id IN (SELECT value FROM json_each(?)) ORDER BY definition_id`,
    postgres: `SELECT audience_id AS "audienceId", definition_id AS "definitionId" FROM definition_dependencies
      WHERE sandbox_id = $1 AND audience_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY definition_id`,
  },
  /** Names of the definitions of the JSON array, by id. */
  definitionNames: {
    sqlite: 'SELECT id, name FROM segment_definitions WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id',
    postgres: `SELECT id, name FROM segment_definitions
      WHERE id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($1 AS jsonb))) ORDER BY id`,
  },
  deleteExternalMembers: {
    sqlite: 'DELETE FROM external_members WHERE audience_id = ?',
    postgres: 'DELETE FROM external_members WHERE audience_id = $1',
  },
  deleteExternalAudience: {
    sqlite: 'DELETE FROM external_audiences WHERE audience_id = ?',
    postgres: 'DELETE FROM external_audiences WHERE audience_id = $1',
  },
  deleteMemberships: {
    sqlite: 'DELETE FROM memberships WHERE sandbox_id = ? AND audience_id = ?',
    postgres: 'DELETE FROM memberships WHERE sandbox_id = $1 AND audience_id = $2',
  },
  deleteMembershipHistory: {
    sqlite: 'DELETE FROM membership_history WHERE sandbox_id = ? AND audience_id = ?',
    postgres: 'DELETE FROM membership_history WHERE sandbox_id = $1 AND audience_id = $2',
  },
  deleteSizeHistory: {
    sqlite: 'DELETE FROM audience_size_history WHERE sandbox_id = ? AND audience_id = ?',
    postgres: 'DELETE FROM audience_size_history WHERE sandbox_id = $1 AND audience_id = $2',
  },
  delete: {
    sqlite: 'DELETE FROM audiences WHERE sandbox_id = ? AND id = ?',
    postgres: 'DELETE FROM audiences WHERE sandbox_id = $1 AND id = $2',
  },
  /** A definition's rows, deleted with its audience (params: the definition id). */
  deleteDefinitionDependencies: {
    sqlite: 'DELETE FROM definition_dependencies WHERE definition_id = ?',
    postgres: 'DELETE FROM definition_dependencies WHERE definition_id = $1',
  },
  deleteDefinitionVersions: {
    sqlite: 'DELETE FROM definition_versions WHERE definition_id = ?',
    postgres: 'DELETE FROM definition_versions WHERE definition_id = $1',
  },
  deleteDefinition: {
    sqlite: 'DELETE FROM segment_definitions WHERE id = ?',
    postgres: 'DELETE FROM segment_definitions WHERE id = $1',
  },
  /** The pages of listAudiences, one text per order and reading direction. */
  pageNameUp: pageText('NAME', true),
  pageNameDown: pageText('NAME', false),
  pageCreatedUp: pageText('CREATED_AT', true),
  pageCreatedDown: pageText('CREATED_AT', false),
  pageUpdatedUp: pageText('UPDATED_AT', true),
  pageUpdatedDown: pageText('UPDATED_AT', false),
  pageSizeUp: pageText('SIZE', true),
  pageSizeDown: pageText('SIZE', false),
  /** listAudiences' totalCount: the filters' params (filterParams). */
  count: {
    sqlite: `SELECT count(*) AS n FROM audiences WHERE ${FILTER}`,
    postgres: numbered(`SELECT count(*) AS n FROM audiences WHERE ${FILTER_PG}`),
  },
  /** Recounts an audience's current members into its size (params: the audience id twice). */
  refreshSize: {
    sqlite: `UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL})
      WHERE id = ?`,
    postgres: `UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = $1 AND status IN ${CURRENT_STATUSES_SQL})
      WHERE id = $2`,
  },
});

const PAGES = {
  NAME: [q.pageNameUp, q.pageNameDown],
  CREATED_AT: [q.pageCreatedUp, q.pageCreatedDown],
  UPDATED_AT: [q.pageUpdatedUp, q.pageUpdatedDown],
  SIZE: [q.pageSizeUp, q.pageSizeDown],
} as const;

function toAudience(row: AudienceRow): Audience {
  const { nameKey: _nameKey, ...rest } = row;
  return {
    ...rest,
    origin: row.origin as AudienceOrigin,
    lifecycleState: row.lifecycleState as LifecycleState,
    labels: JSON.parse(row.labels) as string[],
  };
}

/** Trims and checks a name: 1–255 characters. */
export function validName(name: string, field = 'input.name'): string {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw badInput('The name is empty', field);
  if (trimmed.length > NAME_MAX)
    throw badInput(`The name is ${trimmed.length} characters; the maximum is ${NAME_MAX}`, field);
  return trimmed;
}

function validLabels(labels: readonly string[] | null | undefined, field = 'input.labels'): string[] {
  if (!labels) return [];
  if (labels.length > 50) throw badInput('At most 50 labels', field);
  const out = [...new Set(labels.map((l) => l.trim()))];
  if (out.some((l) => l.length === 0 || l.length > 64)) throw badInput('Labels are 1 to 64 characters', field);
  return out;
}

export async function audiencesByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Audience>> {
  const out = new Map<number, Audience>();
  if (ids.length === 0) return out;
  for (const row of await conn.all<AudienceRow>(q.byIds, [sandboxId, JSON.stringify(ids)]))
    out.set(row.id, toAudience(row));
  return out;
}

export async function requireAudience(conn: Store, sandboxId: number, id: number): Promise<Audience> {
  const audience = (await audiencesByIds(conn, sandboxId, [id])).get(id);
  if (!audience)
    throw notFound(
      `No audience with id "${encodeGlobalId('Audience', id)}" in this sandbox`,
      encodeGlobalId('Audience', id),
    );
  return audience;
}

/** Throws CONFLICT when another audience in the namespace has this name (case-insensitive). */
async function assertNameFree(
  conn: Store,
  sandboxId: number,
  namespace: string,
  name: string,
  exceptId?: number,
): Promise<void> {
  const row = await conn.get<{ id: number }>(q.idByName, [sandboxId, namespace, name.toLowerCase()]);
  if (row && row.id !== exceptId)
    throw conflict(`An audience named "${name}" already exists in namespace "${namespace}"`);
}

interface NewAudience {
  name: string;
  namespace?: string | null;
  description?: string | null;
  origin: AudienceOrigin;
  lifecycleState?: LifecycleState | null;
  labels?: string[] | null;
  folderId?: number | null;
  definitionId?: number | null;
}

/** Inserts an audience (the caller holds the transaction). */
export async function insertAudience(
  conn: Store,
  sandboxId: number,
  input: NewAudience,
  now: number,
): Promise<Audience> {
  const name = validName(input.name);
  const namespace = input.namespace ?? SEGQL_NAMESPACE;
  if (!NAMESPACE.test(namespace))
    throw badInput('Namespaces are 1 to 64 letters, digits, "_", "." or "-"', 'input.namespace');
  if (input.folderId != null) await requireFolder(conn, sandboxId, input.folderId);
  await assertNameFree(conn, sandboxId, namespace, name);
  const row = await conn.get<AudienceRow>(q.insert, [
    sandboxId,
    name,
    name.toLowerCase(),
    namespace,
    input.description ?? null,
    input.origin,
    input.lifecycleState ?? 'DRAFT',
    JSON.stringify(validLabels(input.labels)),
    input.folderId ?? null,
    input.definitionId ?? null,
    now,
    now,
  ]);
  return toAudience(row!);
}

export async function createManualAudience(
  conn: Store,
  sandboxId: number,
  input: Omit<NewAudience, 'origin' | 'definitionId'>,
  now = Date.now(),
): Promise<Audience> {
  return writeUnit(conn, (tx) => insertAudience(tx, sandboxId, { ...input, origin: 'MANUAL' }, now));
}

interface AudienceChanges {
  name?: string | null;
  description?: string | null;
  lifecycleState?: LifecycleState | null;
  labels?: string[] | null;
  folderId?: number | null;
  /** true when folderId was given (null then means "move to the root"). */
  folderGiven?: boolean;
}

/** Applies changes to an audience (the caller holds the transaction); bumps its version. */
export async function applyAudienceChanges(
  conn: Store,
  audience: Audience,
  changes: AudienceChanges,
  expectedVersion: number | null | undefined,
  now: number,
): Promise<Audience> {
  if (expectedVersion != null && expectedVersion !== audience.version) {
    throw conflict(`The audience is at version ${audience.version}, not ${expectedVersion}: reload and try again`, {
      currentVersion: audience.version,
    });
  }
  if (audience.lifecycleState === 'ARCHIVED')
    throw conflict('The audience is ARCHIVED; archived audiences cannot change');
  let { name, description, labels, folderId } = audience;
  let lifecycleState: LifecycleState = audience.lifecycleState;
  if (changes.name != null) {
    name = validName(changes.name);
    await assertNameFree(conn, audience.sandboxId, audience.namespace, name, audience.id);
  }
  if (changes.description !== undefined) description = changes.description;
  if (changes.lifecycleState != null) {
    assertLifecycleChange(audience.lifecycleState, changes.lifecycleState);
    lifecycleState = changes.lifecycleState;
  }
  if (changes.labels != null) labels = validLabels(changes.labels);
  if (changes.folderGiven) {
    if (changes.folderId != null) await requireFolder(conn, audience.sandboxId, changes.folderId);
    folderId = changes.folderId ?? null;
  }
  const updated = await conn.get<AudienceRow>(q.update, [
    name,
    name.toLowerCase(),
    description,
    lifecycleState,
    JSON.stringify(labels),
    folderId,
    audience.version + 1,
    now,
    audience.id,
    audience.version,
  ]);
  if (!updated) throw conflict('The audience changed while this update ran: reload and try again');
  return toAudience(updated);
}

export async function updateAudience(
  conn: Store,
  sandboxId: number,
  id: number,
  changes: AudienceChanges,
  expectedVersion?: number | null,
  now = Date.now(),
): Promise<Audience> {
  return writeUnit(conn, async (tx) => {
    const audience = await requireAudience(tx, sandboxId, id);
    if (audience.origin === 'SEGMENTATION_SERVICE' && changes.name != null) {
      throw badInput('This audience belongs to a segment definition: rename the definition instead', 'input.name');
    }
    return applyAudienceChanges(tx, audience, changes, expectedVersion, now);
  });
}

/** Definitions that name this audience through inSegment (other than its own). */
export async function dependentDefinitions(
  conn: Store,
  sandboxId: number,
  audienceIds: readonly number[],
): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>(audienceIds.map((id) => [id, []]));
  if (audienceIds.length === 0) return out;
  const rows = await conn.all<{ audienceId: number; definitionId: number }>(q.dependents, [
    sandboxId,
    JSON.stringify(audienceIds),
  ]);
  for (const r of rows) out.get(r.audienceId)?.push(r.definitionId);
  return out;
}

/** CONFLICT naming every definition that still uses the audience. */
export async function assertNoDependents(conn: Store, sandboxId: number, audience: Audience): Promise<void> {
  const dependents = ((await dependentDefinitions(conn, sandboxId, [audience.id])).get(audience.id) ?? []).filter(
    (d) => d !== audience.definitionId,
  );
  if (dependents.length === 0) return;
  const names = await conn.all<{ id: number; name: string }>(q.definitionNames, [JSON.stringify(dependents)]);
  throw conflict(
    `Audience "${audience.name}" is used through inSegment by ${names.map((n) => `"${n.name}"`).join(', ')}; change or delete those first`,
    { dependents: names.map((n) => ({ id: encodeGlobalId('SegmentDefinition', n.id), name: n.name })) },
  );
}

/**
 * Removes an audience with its memberships and their history, and the list of an external one
 * (the caller holds the transaction).
 */
export async function removeAudienceRows(conn: Store, sandboxId: number, audienceId: number): Promise<void> {
  await conn.run(q.deleteExternalMembers, [audienceId]);
  await conn.run(q.deleteExternalAudience, [audienceId]);
  for (const statement of [q.deleteMemberships, q.deleteMembershipHistory, q.deleteSizeHistory, q.delete])
    await conn.run(statement, [sandboxId, audienceId]);
}

/**
 * Deletes an audience; one made by a definition goes together with its definition (CONFLICT
 * while other definitions or a schedule use it).
 */
export async function deleteAudience(conn: Store, sandboxId: number, id: number): Promise<number> {
  return writeUnit(conn, async (tx) => {
    const audience = await requireAudience(tx, sandboxId, id);
    await assertNoDependents(tx, sandboxId, audience);
    await assertNoScheduleNames(tx, sandboxId, audience.id, `Audience "${audience.name}"`);
    if (audience.definitionId != null) {
      for (const statement of [q.deleteDefinitionDependencies, q.deleteDefinitionVersions, q.deleteDefinition])
        await tx.run(statement, [audience.definitionId]);
    }
    await removeAudienceRows(tx, sandboxId, id);
    return id;
  });
}

export const EVALUATION_METHODS = ['BATCH', 'STREAMING', 'EDGE'] as const;
export type EvaluationMethod = (typeof EVALUATION_METHODS)[number];

export interface AudienceFilter {
  nameContains?: string | null;
  namespace?: string | null;
  origin?: AudienceOrigin | null;
  lifecycleState?: LifecycleState | null;
  label?: string | null;
  folderId?: number | null;
  evaluationMethod?: EvaluationMethod | null;
  updatedAfter?: number | null;
}

export const AUDIENCE_ORDER_FIELDS = ['NAME', 'CREATED_AT', 'UPDATED_AT', 'SIZE'] as const;
export type AudienceOrderField = (typeof AUDIENCE_ORDER_FIELDS)[number];
export interface AudienceOrder {
  field: AudienceOrderField;
  direction: OrderDirection;
}

/** The FILTER's params: each value once per place it is used, null where the filter is off. */
function filterParams(sandboxId: number, filter: AudienceFilter): unknown[] {
  const twice = (v: unknown) => [v ?? null, v ?? null];
  return [
    sandboxId,
    ...twice(filter.nameContains ? filter.nameContains.toLowerCase() : null),
    ...twice(filter.namespace),
    ...twice(filter.origin),
    ...twice(filter.lifecycleState),
    ...twice(filter.label),
    ...twice(filter.folderId),
    ...twice(filter.evaluationMethod),
    ...twice(filter.updatedAfter),
  ];
}

type Key = readonly (string | number | null)[];

/**
 * A page's bounds as params of its text: the (value, id) the rows lie above, then below, each
 * `[null, null, null]` when off. Undefined for a cursor of another order (a value of the wrong
 * type: hand-made, or from a list sorted otherwise), which no row passes.
 */
function boundParams(field: AudienceOrderField, above: Key | undefined, below: Key | undefined): unknown[] | undefined {
  const out: unknown[] = [];
  for (const key of [above, below]) {
    if (key === undefined) {
      out.push(null, null, null);
      continue;
    }
    const [value, id] = key;
    const fits = field === 'NAME' ? typeof value === 'string' : Number.isSafeInteger(value);
    if (!fits || !Number.isSafeInteger(id)) return undefined;
    out.push(value, value, id);
  }
  return out;
}

/**
 * Audiences with filters and a stable order (ties broken by id), one statement per order and
 * reading direction with every filter in its text, off when its value is null.
 */
export async function listAudiences(
  conn: Store,
  sandboxId: number,
  filter: AudienceFilter = {},
  order: AudienceOrder = { field: 'CREATED_AT', direction: 'ASC' },
  args: PageArgs = {},
): Promise<Page<Audience> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const filters = filterParams(sandboxId, filter);
  const descending = order.direction === 'DESC';
  // `after` lies before the rows in list order, `before` after them; in ascending (value, id)
  // terms which is above and which below depends on the list's direction.
  const [above, below] = descending ? [query.before, query.after] : [query.after, query.before];
  const bounds = boundParams(order.field, above, below);
  const ascending = (query.direction === 'forward') !== descending;
  const [up, down] = PAGES[order.field];
  const rows = bounds ? await conn.all<AudienceRow>(ascending ? up : down, [...filters, ...bounds, query.fetch]) : [];
  const sortKey = (r: AudienceRow) =>
    order.field === 'NAME'
      ? r.nameKey
      : order.field === 'SIZE'
        ? r.size
        : order.field === 'UPDATED_AT'
          ? r.updatedAt
          : r.createdAt;
  const page = toPage(rows, query, (r) => [sortKey(r), r.id]);
  return {
    ...page,
    items: page.items.map(toAudience),
    totalCount: async () => (await conn.get<{ n: number }>(q.count, filters))!.n,
  };
}

/**
 * Recounts an audience's current members into its cached size, synchronously on SQLite: for the
 * ingest path (profile stitching), which runs on its own connection and thread.
 */
export function refreshAudienceSizeSync(conn: Connection, audienceId: number): void {
  preparedOn(conn.sqlite, q.refreshSize).run(audienceId, audienceId);
}

/** Recounts an audience's current members into its cached size. */
export async function refreshAudienceSize(conn: Store, audienceId: number): Promise<void> {
  await conn.run(q.refreshSize, [audienceId, audienceId]);
}
