import { and, eq, inArray, type SQL, sql } from 'drizzle-orm';
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { preparedSelect, rowsByIds } from '../db/rows-by-ids.js';
import {
  audienceSizeHistory,
  audiences,
  definitionDependencies,
  definitionVersions,
  membershipHistory,
  memberships,
  segmentDefinitions,
} from '../db/schema.js';
import { writeUnit } from '../db/unit.js';
import { badInput, conflict, notFound } from './errors.js';
import { requireFolder } from './folders.js';
import { encodeGlobalId } from './ids.js';
import { assertLifecycleChange, type LifecycleState } from './lifecycle.js';
import { CURRENT_STATUSES_SQL } from './membership-statuses.js';
import { countRows, keyset, type OrderDirection, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
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

type AudienceRow = typeof audiences.$inferSelect;

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
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, Audience>> {
  const out = new Map<number, Audience>();
  for (const row of rowsByIds(conn, audiences, sandboxId, ids)) out.set(row.id, toAudience(row));
  return out;
}

export async function requireAudience(conn: Connection, sandboxId: number, id: number): Promise<Audience> {
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
  conn: Connection,
  sandboxId: number,
  namespace: string,
  name: string,
  exceptId?: number,
): Promise<void> {
  const row = conn.db
    .select({ id: audiences.id })
    .from(audiences)
    .where(
      and(
        eq(audiences.sandboxId, sandboxId),
        eq(audiences.namespace, namespace),
        eq(audiences.nameKey, name.toLowerCase()),
      ),
    )
    .get();
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
  conn: Connection,
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
  const row = conn.db
    .insert(audiences)
    .values({
      sandboxId,
      name,
      nameKey: name.toLowerCase(),
      namespace,
      description: input.description ?? null,
      origin: input.origin,
      lifecycleState: input.lifecycleState ?? 'DRAFT',
      labels: JSON.stringify(validLabels(input.labels)),
      folderId: input.folderId ?? null,
      definitionId: input.definitionId ?? null,
      createdAt: now,
      updatedAt: now,
    })
    .returning()
    .get();
  return toAudience(row);
}

export async function createManualAudience(
  conn: Connection,
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
  conn: Connection,
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
  const set: Partial<AudienceRow> = { updatedAt: now, version: audience.version + 1 };
  if (changes.name != null) {
    const name = validName(changes.name);
    await assertNameFree(conn, audience.sandboxId, audience.namespace, name, audience.id);
    set.name = name;
    set.nameKey = name.toLowerCase();
  }
  if (changes.description !== undefined) set.description = changes.description;
  if (changes.lifecycleState != null) {
    assertLifecycleChange(audience.lifecycleState, changes.lifecycleState);
    set.lifecycleState = changes.lifecycleState;
  }
  if (changes.labels != null) set.labels = JSON.stringify(validLabels(changes.labels));
  if (changes.folderGiven) {
    if (changes.folderId != null) await requireFolder(conn, audience.sandboxId, changes.folderId);
    set.folderId = changes.folderId ?? null;
  }
  const updated = conn.db
    .update(audiences)
    .set(set)
    .where(and(eq(audiences.id, audience.id), eq(audiences.version, audience.version)))
    .returning()
    .get();
  if (!updated) throw conflict('The audience changed while this update ran: reload and try again');
  return toAudience(updated);
}

export async function updateAudience(
  conn: Connection,
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
  conn: Connection,
  sandboxId: number,
  audienceIds: readonly number[],
): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>(audienceIds.map((id) => [id, []]));
  if (audienceIds.length === 0) return out;
  const rows = conn.db
    .select({ audienceId: definitionDependencies.audienceId, definitionId: definitionDependencies.definitionId })
    .from(definitionDependencies)
    .where(
      and(
        eq(definitionDependencies.sandboxId, sandboxId),
        inArray(definitionDependencies.audienceId, [...audienceIds]),
      ),
    )
    .orderBy(definitionDependencies.definitionId)
    .all();
  for (const r of rows) out.get(r.audienceId)?.push(r.definitionId);
  return out;
}

/** CONFLICT naming every definition that still uses the audience. */
export async function assertNoDependents(conn: Connection, sandboxId: number, audience: Audience): Promise<void> {
  const dependents = ((await dependentDefinitions(conn, sandboxId, [audience.id])).get(audience.id) ?? []).filter(
    (d) => d !== audience.definitionId,
  );
  if (dependents.length === 0) return;
  const names = conn.db
    .select({ id: segmentDefinitions.id, name: segmentDefinitions.name })
    .from(segmentDefinitions)
    .where(inArray(segmentDefinitions.id, dependents))
    .all();
  throw conflict(
    `Audience "${audience.name}" is used through inSegment by ${names.map((n) => `"${n.name}"`).join(', ')}; change or delete those first`,
    { dependents: names.map((n) => ({ id: encodeGlobalId('SegmentDefinition', n.id), name: n.name })) },
  );
}

/**
 * Removes an audience with its memberships and their history, and the list of an external one
 * (the caller holds the transaction).
 */
export async function removeAudienceRows(conn: Connection, sandboxId: number, audienceId: number): Promise<void> {
  conn.sqlite.prepare('DELETE FROM external_members WHERE audience_id = ?').run(audienceId);
  conn.sqlite.prepare('DELETE FROM external_audiences WHERE audience_id = ?').run(audienceId);
  conn.db
    .delete(memberships)
    .where(and(eq(memberships.sandboxId, sandboxId), eq(memberships.audienceId, audienceId)))
    .run();
  conn.db
    .delete(membershipHistory)
    .where(and(eq(membershipHistory.sandboxId, sandboxId), eq(membershipHistory.audienceId, audienceId)))
    .run();
  conn.db
    .delete(audienceSizeHistory)
    .where(and(eq(audienceSizeHistory.sandboxId, sandboxId), eq(audienceSizeHistory.audienceId, audienceId)))
    .run();
  conn.db
    .delete(audiences)
    .where(and(eq(audiences.sandboxId, sandboxId), eq(audiences.id, audienceId)))
    .run();
}

/**
 * Deletes an audience; one made by a definition goes together with its definition (CONFLICT
 * while other definitions or a schedule use it).
 */
export async function deleteAudience(conn: Connection, sandboxId: number, id: number): Promise<number> {
  return writeUnit(conn, async (tx) => {
    const audience = await requireAudience(tx, sandboxId, id);
    await assertNoDependents(tx, sandboxId, audience);
    await assertNoScheduleNames(tx, sandboxId, audience.id, `Audience "${audience.name}"`);
    if (audience.definitionId != null) {
      tx.db.delete(definitionDependencies).where(eq(definitionDependencies.definitionId, audience.definitionId)).run();
      tx.db.delete(definitionVersions).where(eq(definitionVersions.definitionId, audience.definitionId)).run();
      tx.db.delete(segmentDefinitions).where(eq(segmentDefinitions.id, audience.definitionId)).run();
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

const ORDER_COLUMNS = {
  NAME: audiences.nameKey,
  CREATED_AT: audiences.createdAt,
  UPDATED_AT: audiences.updatedAt,
  SIZE: audiences.size,
} as const;

export function evaluationMethodCondition(
  method: EvaluationMethod,
  definitionIdColumn: SQL | typeof audiences.definitionId,
): SQL {
  const column = { BATCH: 'eval_batch', STREAMING: 'eval_streaming', EDGE: 'eval_edge' }[method];
  return sql`EXISTS (SELECT 1 FROM segment_definitions d WHERE d.id = ${definitionIdColumn} AND ${sql.identifier(`d`)}.${sql.identifier(column)} = 1)`;
}

type ListStatement = { all(values: Record<string, unknown>): AudienceRow[] };
const LIST_STATEMENTS = cacheKey<Map<string, ListStatement>>('audience list, per shape');

/**
 * Audiences with filters and a stable order (ties broken by id). The statement is built and
 * prepared once per connection for each shape of request (which filters, which order, which
 * bounds) with every value bound at run time: building and preparing it per request cost more
 * than running it (the `api` bench's profile).
 */
export async function listAudiences(
  conn: Connection,
  sandboxId: number,
  filter: AudienceFilter = {},
  order: AudienceOrder = { field: 'CREATED_AT', direction: 'ASC' },
  args: PageArgs = {},
): Promise<Page<Audience> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const values: Record<string, unknown> = {
    sandboxId,
    nameContains: filter.nameContains ? filter.nameContains.toLowerCase() : null,
    namespace: filter.namespace ?? null,
    origin: filter.origin ?? null,
    lifecycleState: filter.lifecycleState ?? null,
    label: filter.label ?? null,
    folderId: filter.folderId ?? null,
    updatedAfter: filter.updatedAfter ?? null,
    after0: query.after?.[0],
    after1: query.after?.[1],
    before0: query.before?.[0],
    before1: query.before?.[1],
    fetch: query.fetch,
  };
  const shape = [
    ...(['nameContains', 'namespace', 'origin', 'lifecycleState', 'label', 'folderId', 'updatedAfter'] as const).map(
      (k) => (values[k] === null ? '' : k),
    ),
    filter.evaluationMethod ?? '',
    order.field,
    order.direction,
    query.direction,
    query.after ? 'after' : '',
    query.before ? 'before' : '',
  ].join(',');
  const statements = conn.cache.get(LIST_STATEMENTS, () => new Map<string, ListStatement>());
  let statement = statements.get(shape);
  if (!statement) {
    const conditions = audienceConditions(sandboxId, filter, (name) => sql.placeholder(name));
    const bound = (prefix: 'after' | 'before') =>
      query[prefix] && [sql.placeholder(`${prefix}0`), sql.placeholder(`${prefix}1`)];
    const ks = keyset(
      { direction: query.direction, after: bound('after'), before: bound('before') },
      ORDER_COLUMNS[order.field],
      audiences.id,
      order.direction === 'DESC',
    );
    const all = preparedSelect(
      conn,
      audiences,
      conn.db
        .select()
        .from(audiences)
        .where(and(...conditions, ...ks.where))
        .orderBy(...ks.orderBy)
        .limit(sql.placeholder('fetch')),
    );
    statement = { all };
    statements.set(shape, statement);
  }
  const rows = statement.all(values);
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
    totalCount: () => countRows(conn, audiences, and(...audienceConditions(sandboxId, filter, (name) => values[name]))),
  };
}

/** The filter as SQL conditions; `value` gives each filter's value (or its placeholder). */
function audienceConditions(sandboxId: number, filter: AudienceFilter, value: (name: string) => unknown): SQL[] {
  const conditions: SQL[] = [sql`${audiences.sandboxId} = ${value('sandboxId') ?? sandboxId}`];
  if (filter.nameContains) conditions.push(sql`instr(${audiences.nameKey}, ${value('nameContains')}) > 0`);
  if (filter.namespace != null) conditions.push(sql`${audiences.namespace} = ${value('namespace')}`);
  if (filter.origin != null) conditions.push(sql`${audiences.origin} = ${value('origin')}`);
  if (filter.lifecycleState != null) conditions.push(sql`${audiences.lifecycleState} = ${value('lifecycleState')}`);
  if (filter.label != null)
    conditions.push(sql`EXISTS (SELECT 1 FROM json_each(${audiences.labels}) WHERE value = ${value('label')})`);
  if (filter.folderId != null) conditions.push(sql`${audiences.folderId} = ${value('folderId')}`);
  if (filter.evaluationMethod != null)
    conditions.push(evaluationMethodCondition(filter.evaluationMethod, audiences.definitionId));
  if (filter.updatedAfter != null) conditions.push(sql`${audiences.updatedAt} > ${value('updatedAfter')}`);
  return conditions;
}

/** Recounts an audience's current members into its cached size. */
export function refreshAudienceSize(conn: Connection, audienceId: number): void {
  conn.sqlite
    .prepare(
      `UPDATE audiences SET size = (SELECT count(*) FROM memberships WHERE audience_id = ? AND status IN ${CURRENT_STATUSES_SQL})
       WHERE id = ?`,
    )
    .run(audienceId, audienceId);
}
