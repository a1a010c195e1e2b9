import { and, eq, gt, inArray, type SQL, sql } from 'drizzle-orm';
import type { Connection } from '../db/index.js';
import { rowsByIds } from '../db/rows-by-ids.js';
import { audiences, definitionDependencies, segmentDefinitions } from '../db/schema.js';
import { writeUnit } from '../db/unit.js';
import type { Eligibility } from '../pql/index.js';
import {
  applyAudienceChanges,
  deleteAudience,
  type EvaluationMethod,
  evaluationMethodCondition,
  insertAudience,
  requireAudience,
  validName,
} from './audiences.js';
import { OPEN_ACTOR, recordDefinitionVersion } from './definition-versions.js';
import { badInput, conflict, notFound } from './errors.js';
import {
  assertRunnable,
  type CheckedInput,
  checkExpression,
  type ExpressionInput,
  type PqlFormat,
} from './expressions.js';
import { encodeGlobalId } from './ids.js';
import type { LifecycleState } from './lifecycle.js';
import { countRows, keyset, type OrderDirection, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { assertNoScheduleNames } from './schedules/schedule-references.js';

export interface EvaluationInfo {
  batch: boolean;
  streaming: boolean;
  edge: boolean;
}

/** Requested flags; an absent (or null) flag keeps its current value. */
export type EvaluationRequest = { [K in keyof EvaluationInfo]?: boolean | null };

export interface SegmentDefinition {
  id: number;
  sandboxId: number;
  audienceId: number;
  name: string;
  description: string | null;
  expression: { format: PqlFormat; value: string };
  /** Canonical text of the expression (what the engines compile). */
  expressionText: string;
  evaluationInfo: EvaluationInfo;
  eligibility: Eligibility;
  /** Why a requested streaming or edge evaluation runs as batch instead (empty when none was refused). */
  evaluationWarnings: string[];
  referencedFields: string[];
  ttlInDays: number | null;
  version: number;
  createdAt: number;
  updatedAt: number;
}

type DefinitionRow = typeof segmentDefinitions.$inferSelect;

function toDefinition(row: DefinitionRow): SegmentDefinition {
  return {
    id: row.id,
    sandboxId: row.sandboxId,
    audienceId: row.audienceId,
    name: row.name,
    description: row.description,
    expression: { format: row.expressionFormat as PqlFormat, value: row.expressionValue },
    expressionText: row.expressionText,
    evaluationInfo: { batch: row.evalBatch, streaming: row.evalStreaming, edge: row.evalEdge },
    eligibility: {
      batch: true,
      streaming: row.eligibleStreaming,
      edge: row.eligibleEdge,
      reasons: JSON.parse(row.eligibilityReasons) as string[],
    },
    evaluationWarnings: JSON.parse(row.evaluationWarnings) as string[],
    referencedFields: JSON.parse(row.referencedFields) as string[],
    ttlInDays: row.ttlInDays,
    version: row.version,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function definitionsByIds(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Map<number, SegmentDefinition> {
  const out = new Map<number, SegmentDefinition>();
  for (const row of rowsByIds(conn, segmentDefinitions, sandboxId, ids)) out.set(row.id, toDefinition(row));
  return out;
}

export async function requireDefinition(conn: Connection, sandboxId: number, id: number): Promise<SegmentDefinition> {
  const def = definitionsByIds(conn, sandboxId, [id]).get(id);
  if (!def) {
    const gid = encodeGlobalId('SegmentDefinition', id);
    throw notFound(`No segment definition with id "${gid}" in this sandbox`, gid);
  }
  return def;
}

/** Audience ids each definition names through inSegment. */
export function dependenciesOf(
  conn: Connection,
  sandboxId: number,
  definitionIds: readonly number[],
): Map<number, number[]> {
  const out = new Map<number, number[]>(definitionIds.map((id) => [id, []]));
  if (definitionIds.length === 0) return out;
  for (const r of conn.db
    .select()
    .from(definitionDependencies)
    .where(
      and(
        eq(definitionDependencies.sandboxId, sandboxId),
        inArray(definitionDependencies.definitionId, [...definitionIds]),
      ),
    )
    .orderBy(definitionDependencies.audienceId)
    .all())
    out.get(r.definitionId)?.push(r.audienceId);
  return out;
}

const TTL_MAX_DAYS = 3650;

function validTtl(ttl: number | null | undefined): number | null {
  if (ttl == null) return null;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > TTL_MAX_DAYS) {
    throw badInput(`ttlInDays must be a whole number from 1 to ${TTL_MAX_DAYS}`, 'input.ttlInDays');
  }
  return ttl;
}

/**
 * The evaluation methods a definition gets. Streaming or edge asked for an expression that
 * cannot run so is not an error (the commercial service falls back silently, and definitions
 * copied from it ask for streaming freely): the definition runs as batch, and a warning names
 * the clauses that force batch. A dry run of a change asks the same question before saving.
 */
export function validEvaluation(
  requested: EvaluationRequest | null | undefined,
  base: EvaluationInfo,
  eligibility: Eligibility,
  field = 'input.evaluationInfo',
): { info: EvaluationInfo; warnings: string[] } {
  const info: EvaluationInfo = {
    batch: requested?.batch ?? base.batch,
    streaming: requested?.streaming ?? base.streaming,
    edge: requested?.edge ?? base.edge,
  };
  if (!info.batch && !info.streaming && !info.edge) {
    throw badInput('Enable at least one evaluation method', field);
  }
  const warnings: string[] = [];
  for (const method of ['streaming', 'edge'] as const) {
    if (info[method] && !eligibility[method]) {
      info[method] = false;
      info.batch = true;
      warnings.push(
        `${method} was requested but the expression cannot run so; it runs as batch: ${eligibility.reasons.join('; ') || 'not eligible'}`,
      );
    }
  }
  return { info, warnings };
}

function expressionColumns(input: ExpressionInput, checked: CheckedInput) {
  return {
    expressionFormat: input.format,
    expressionValue: input.value,
    expressionText: checked.text,
    eligibleStreaming: checked.checked.eligibility.streaming,
    eligibleEdge: checked.checked.eligibility.edge,
    eligibilityReasons: JSON.stringify(checked.checked.eligibility.reasons),
    referencedFields: JSON.stringify(checked.checked.referencedFields),
  };
}

async function writeDependencies(
  conn: Connection,
  sandboxId: number,
  definitionId: number,
  audienceIds: readonly number[],
): Promise<void> {
  conn.db.delete(definitionDependencies).where(eq(definitionDependencies.definitionId, definitionId)).run();
  if (audienceIds.length > 0) {
    conn.db
      .insert(definitionDependencies)
      .values(audienceIds.map((audienceId) => ({ sandboxId, definitionId, audienceId })))
      .run();
  }
}

async function assertDefinitionNameFree(
  conn: Connection,
  sandboxId: number,
  name: string,
  exceptId?: number,
): Promise<void> {
  const row = conn.db
    .select({ id: segmentDefinitions.id })
    .from(segmentDefinitions)
    .where(and(eq(segmentDefinitions.sandboxId, sandboxId), eq(segmentDefinitions.nameKey, name.toLowerCase())))
    .get();
  if (row && row.id !== exceptId) throw conflict(`A segment definition named "${name}" already exists`);
}

interface CreateDefinitionInput {
  name: string;
  description?: string | null;
  expression: ExpressionInput;
  evaluationInfo?: EvaluationRequest | null;
  ttlInDays?: number | null;
  lifecycleState?: LifecycleState | null;
  labels?: string[] | null;
  folderId?: number | null;
  /** Who makes it, for the version history: the API key's name, or "open". */
  changedBy?: string | null;
}

/** Creates a definition and its audience in one transaction. */
export async function createSegmentDefinition(
  conn: Connection,
  sandboxId: number,
  input: CreateDefinitionInput,
  now = Date.now(),
): Promise<SegmentDefinition> {
  const name = validName(input.name);
  const ttlInDays = validTtl(input.ttlInDays);
  return writeUnit(conn, async (tx) => {
    const checked = checkExpression(tx, sandboxId, input.expression, { definition: true });
    assertRunnable(tx, sandboxId, checked.checked);
    const { info: evaluation, warnings } = validEvaluation(
      input.evaluationInfo,
      { batch: true, streaming: false, edge: false },
      checked.checked.eligibility,
    );
    await assertDefinitionNameFree(tx, sandboxId, name);
    const audience = await insertAudience(
      tx,
      sandboxId,
      {
        name,
        description: input.description,
        origin: 'SEGMENTATION_SERVICE',
        lifecycleState: input.lifecycleState,
        labels: input.labels,
        folderId: input.folderId,
      },
      now,
    );
    const row = tx.db
      .insert(segmentDefinitions)
      .values({
        sandboxId,
        audienceId: audience.id,
        name,
        nameKey: name.toLowerCase(),
        description: input.description ?? null,
        ...expressionColumns(input.expression, checked),
        evalBatch: evaluation.batch,
        evalStreaming: evaluation.streaming,
        evalEdge: evaluation.edge,
        evaluationWarnings: JSON.stringify(warnings),
        ttlInDays,
        createdAt: now,
        updatedAt: now,
      })
      .returning()
      .get();
    tx.db.update(audiences).set({ definitionId: row.id }).where(eq(audiences.id, audience.id)).run();
    await writeDependencies(tx, sandboxId, row.id, checked.checked.referencedAudiences);
    await recordDefinitionVersion(tx, row, input.changedBy ?? OPEN_ACTOR, now);
    return toDefinition(row);
  });
}

interface UpdateDefinitionInput {
  name?: string | null;
  description?: string | null;
  expression?: ExpressionInput | null;
  evaluationInfo?: EvaluationRequest | null;
  ttlInDays?: number | null;
  lifecycleState?: LifecycleState | null;
  labels?: string[] | null;
  /** Who makes the change, for the version history: the API key's name, or "open". */
  changedBy?: string | null;
}

/**
 * Changes a definition (and the audience fields it carries: name, description, lifecycle,
 * labels). A new expression is checked again; memberships stay as they are until the next
 * evaluation. `expectedVersion` guards against lost updates.
 */
export async function updateSegmentDefinition(
  conn: Connection,
  sandboxId: number,
  id: number,
  input: UpdateDefinitionInput,
  expectedVersion?: number | null,
  now = Date.now(),
): Promise<SegmentDefinition> {
  return writeUnit(conn, async (tx) => {
    const def = await requireDefinition(tx, sandboxId, id);
    if (expectedVersion != null && expectedVersion !== def.version) {
      throw conflict(`The definition is at version ${def.version}, not ${expectedVersion}: reload and try again`, {
        currentVersion: def.version,
      });
    }
    const audience = await requireAudience(tx, sandboxId, def.audienceId);
    if (audience.lifecycleState === 'ARCHIVED')
      throw conflict("The definition's audience is ARCHIVED; archived definitions cannot change");
    const set: Partial<DefinitionRow> = { updatedAt: now, version: def.version + 1 };
    let eligibility = def.eligibility;
    if (input.name != null) {
      const name = validName(input.name);
      await assertDefinitionNameFree(tx, sandboxId, name, id);
      set.name = name;
      set.nameKey = name.toLowerCase();
    }
    if (input.description !== undefined) set.description = input.description;
    if (input.ttlInDays !== undefined) set.ttlInDays = validTtl(input.ttlInDays);
    if (input.expression) {
      const checked = checkExpression(tx, sandboxId, input.expression, {
        definition: true,
        selfAudienceId: def.audienceId,
      });
      assertRunnable(tx, sandboxId, checked.checked);
      Object.assign(set, expressionColumns(input.expression, checked));
      eligibility = checked.checked.eligibility;
      await writeDependencies(tx, sandboxId, id, checked.checked.referencedAudiences);
    }
    if (input.evaluationInfo || input.expression) {
      const { info, warnings } = validEvaluation(input.evaluationInfo, def.evaluationInfo, eligibility);
      set.evaluationWarnings = JSON.stringify(warnings);
      set.evalBatch = info.batch;
      set.evalStreaming = info.streaming;
      set.evalEdge = info.edge;
    }
    const updated = tx.db
      .update(segmentDefinitions)
      .set(set)
      .where(and(eq(segmentDefinitions.id, id), eq(segmentDefinitions.version, def.version)))
      .returning()
      .get();
    if (!updated) throw conflict('The definition changed while this update ran: reload and try again');
    const changed =
      updated.expressionText !== def.expressionText ||
      updated.evalBatch !== def.evaluationInfo.batch ||
      updated.evalStreaming !== def.evaluationInfo.streaming ||
      updated.evalEdge !== def.evaluationInfo.edge;
    if (changed) await recordDefinitionVersion(tx, updated, input.changedBy ?? OPEN_ACTOR, now);
    await applyAudienceChanges(
      tx,
      audience,
      { name: set.name, description: input.description, lifecycleState: input.lifecycleState, labels: input.labels },
      null,
      now,
    );
    return toDefinition(updated);
  });
}

/** Deletes a definition with its audience and memberships; CONFLICT while other definitions or a schedule use it. */
export async function deleteSegmentDefinition(conn: Connection, sandboxId: number, id: number): Promise<number> {
  return writeUnit(conn, async (tx) => {
    const definition = await requireDefinition(tx, sandboxId, id);
    await assertNoScheduleNames(tx, sandboxId, definition.audienceId, `Segment definition "${definition.name}"`);
    await deleteAudience(tx, sandboxId, definition.audienceId);
    return id;
  });
}

interface DefinitionFilter {
  nameContains?: string | null;
  lifecycleState?: LifecycleState | null;
  evaluationMethod?: EvaluationMethod | null;
  label?: string | null;
  folderId?: number | null;
  updatedAfter?: number | null;
}

export const DEFINITION_ORDER_FIELDS = ['NAME', 'CREATED_AT', 'UPDATED_AT'] as const;
type DefinitionOrderField = (typeof DEFINITION_ORDER_FIELDS)[number];

const ORDER_COLUMNS = {
  NAME: segmentDefinitions.nameKey,
  CREATED_AT: segmentDefinitions.createdAt,
  UPDATED_AT: segmentDefinitions.updatedAt,
} as const;

export async function listSegmentDefinitions(
  conn: Connection,
  sandboxId: number,
  filter: DefinitionFilter = {},
  order: { field: DefinitionOrderField; direction: OrderDirection } = { field: 'CREATED_AT', direction: 'ASC' },
  args: PageArgs = {},
): Promise<Page<SegmentDefinition> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [eq(segmentDefinitions.sandboxId, sandboxId)];
  if (filter.nameContains)
    conditions.push(sql`instr(${segmentDefinitions.nameKey}, ${filter.nameContains.toLowerCase()}) > 0`);
  if (filter.evaluationMethod != null)
    conditions.push(evaluationMethodCondition(filter.evaluationMethod, segmentDefinitions.id as never));
  if (filter.updatedAfter != null) conditions.push(gt(segmentDefinitions.updatedAt, filter.updatedAfter));
  const audienceConds: SQL[] = [];
  if (filter.lifecycleState != null) audienceConds.push(sql`a.lifecycle_state = ${filter.lifecycleState}`);
  if (filter.label != null)
    audienceConds.push(sql`EXISTS (SELECT 1 FROM json_each(a.labels) WHERE value = ${filter.label})`);
  if (filter.folderId != null) audienceConds.push(sql`a.folder_id = ${filter.folderId}`);
  if (audienceConds.length > 0) {
    conditions.push(
      sql`EXISTS (SELECT 1 FROM audiences a WHERE a.id = ${segmentDefinitions.audienceId} AND ${sql.join(audienceConds, sql` AND `)})`,
    );
  }
  const base = [...conditions];
  const ks = keyset(query, ORDER_COLUMNS[order.field], segmentDefinitions.id, order.direction === 'DESC');
  const rows = conn.db
    .select()
    .from(segmentDefinitions)
    .where(and(...conditions, ...ks.where))
    .orderBy(...ks.orderBy)
    .limit(query.fetch)
    .all();
  const sortKey = (r: DefinitionRow) =>
    order.field === 'NAME' ? r.nameKey : order.field === 'UPDATED_AT' ? r.updatedAt : r.createdAt;
  const page = toPage(rows, query, (r) => [sortKey(r), r.id]);
  return {
    ...page,
    items: page.items.map(toDefinition),
    totalCount: () => countRows(conn, segmentDefinitions, and(...base)),
  };
}

/** Definitions (ids) that read a schema field, so its type cannot change under them. */
export async function definitionsUsingField(
  conn: Connection,
  sandboxId: number,
  cls: 'profile' | 'event',
  path: string,
): Promise<string[]> {
  const needle = cls === 'event' ? `xEvent.${path}` : path;
  return (
    conn.sqlite
      .prepare(
        `SELECT name FROM segment_definitions WHERE sandbox_id = ? AND EXISTS (SELECT 1 FROM json_each(referenced_fields) WHERE value = ?)`,
      )
      .pluck()
      .all(sandboxId, needle) as string[]
  ).map((n) => `definition "${n}"`);
}

/** Orders definitions so each comes after the definitions whose audiences it names through inSegment. */
export function dependencyOrder<D extends Pick<SegmentDefinition, 'id' | 'name' | 'audienceId'>>(
  definitions: D[],
  deps: ReadonlyMap<number, number[]>,
): D[] {
  const byAudience = new Map(definitions.map((d) => [d.audienceId, d]));
  const ordered: D[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (d: D) => {
    if (state.get(d.id) === 'done') return;
    if (state.get(d.id) === 'visiting') throw new Error(`inSegment cycle through definition "${d.name}"`);
    state.set(d.id, 'visiting');
    for (const audienceId of deps.get(d.id) ?? []) {
      const dep = byAudience.get(audienceId);
      if (dep) visit(dep);
    }
    state.set(d.id, 'done');
    ordered.push(d);
  };
  for (const d of [...definitions].sort((a, b) => a.id - b.id)) visit(d);
  return ordered;
}
