import type { Connection } from '../db/index.js';
import { preparedOn, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import { writeUnit } from '../db/unit.js';
import type { Eligibility } from '../pql/index.js';
import {
  applyAudienceChanges,
  deleteAudience,
  type EvaluationMethod,
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
import { type OrderDirection, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
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

/** A definition's row as both texts give it: the flags as 0 or 1, the JSON arrays as text. */
interface DefinitionRow {
  id: number;
  sandboxId: number;
  audienceId: number;
  name: string;
  nameKey: string;
  description: string | null;
  expressionFormat: string;
  expressionValue: string;
  expressionText: string;
  evalBatch: number;
  evalStreaming: number;
  evalEdge: number;
  eligibleStreaming: number;
  eligibleEdge: number;
  eligibilityReasons: string;
  evaluationWarnings: string;
  referencedFields: string;
  ttlInDays: number | null;
  version: number;
  createdAt: number;
  updatedAt: number;
}

const columns = (flag: (column: string) => string) => `id, sandbox_id AS "sandboxId", audience_id AS "audienceId",
  name, name_key AS "nameKey", description, expression_format AS "expressionFormat",
  expression_value AS "expressionValue", expression_text AS "expressionText", ${flag('eval_batch')} AS "evalBatch",
  ${flag('eval_streaming')} AS "evalStreaming", ${flag('eval_edge')} AS "evalEdge",
  ${flag('eligible_streaming')} AS "eligibleStreaming", ${flag('eligible_edge')} AS "eligibleEdge",
  eligibility_reasons AS "eligibilityReasons", evaluation_warnings AS "evaluationWarnings",
  referenced_fields AS "referencedFields", ttl_in_days AS "ttlInDays", version, created_at AS "createdAt",
  updated_at AS "updatedAt"`;
const COLUMNS = columns((c) => c);
const COLUMNS_PG = columns((c) => `CAST(${c} AS integer)`);

/** The columns an update may set, with their PostgreSQL types; `version` and `updated_at` are always set. */
const SETTABLE = [
  ['name', 'name', 'text'],
  ['nameKey', 'name_key', 'text'],
  ['description', 'description', 'text'],
  ['ttlInDays', 'ttl_in_days', 'bigint'],
  ['expressionFormat', 'expression_format', 'text'],
  ['expressionValue', 'expression_value', 'text'],
  ['expressionText', 'expression_text', 'text'],
  ['eligibleStreaming', 'eligible_streaming', 'boolean'],
  ['eligibleEdge', 'eligible_edge', 'boolean'],
  ['eligibilityReasons', 'eligibility_reasons', 'text'],
  ['referencedFields', 'referenced_fields', 'text'],
  ['evaluationWarnings', 'evaluation_warnings', 'text'],
  ['evalBatch', 'eval_batch', 'boolean'],
  ['evalStreaming', 'eval_streaming', 'boolean'],
  ['evalEdge', 'eval_edge', 'boolean'],
] as const satisfies readonly (readonly [keyof DefinitionRow, string, string])[];
type DefinitionSet = Partial<Pick<DefinitionRow, (typeof SETTABLE)[number][0]>>;

/**
 * One text for every update: each settable column takes two parameters, 1 and its new value to
 * set it (a flag as 0 or 1), 0 and anything to keep it; then the version, `updated_at`, the id
 * and the version the update expects.
 */
const SET = SETTABLE.map(([, c]) => `${c} = CASE WHEN ? = 1 THEN ? ELSE ${c} END`).join(',\n  ');
const SET_PG = SETTABLE.map(([, c, type], i) => {
  const value =
    type === 'boolean' ? `CAST(CAST($${2 * i + 2} AS integer) AS boolean)` : `CAST($${2 * i + 2} AS ${type})`;
  return `${c} = CASE WHEN CAST($${2 * i + 1} AS integer) = 1 THEN ${value} ELSE ${c} END`;
}).join(',\n  ');
const N = 2 * SETTABLE.length;

function setParams(set: DefinitionSet): unknown[] {
  const out: unknown[] = [];
  for (const [key] of SETTABLE) {
    const value = set[key];
    if (value === undefined) out.push(0, null);
    else out.push(1, value);
  }
  return out;
}

/**
 * A list's filters, each off when its parameter (given twice) is null: the name's substring, the
 * updated-after instant, an evaluation method, then the audience's lifecycle state, label and folder.
 */
const FILTER = `d.sandbox_id = ?
  AND (? IS NULL OR instr(d.name_key, ?) > 0)
  AND (? IS NULL OR d.updated_at > ?)
  AND (? IS NULL OR CASE ? WHEN 'BATCH' THEN d.eval_batch WHEN 'STREAMING' THEN d.eval_streaming
    WHEN 'EDGE' THEN d.eval_edge END = 1)
  AND (? IS NULL OR EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id AND a.lifecycle_state = ?))
  AND (? IS NULL OR EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id
    AND EXISTS (SELECT 1 FROM json_each(a.labels) WHERE value = ?)))
  AND (? IS NULL OR EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id AND a.folder_id = ?))`;
const FILTER_PG = `d.sandbox_id = $1
  AND (CAST($2 AS text) IS NULL OR strpos(d.name_key, CAST($3 AS text)) > 0)
  AND (CAST($4 AS bigint) IS NULL OR d.updated_at > CAST($5 AS bigint))
  AND (CAST($6 AS text) IS NULL OR CASE CAST($7 AS text) WHEN 'BATCH' THEN d.eval_batch
    WHEN 'STREAMING' THEN d.eval_streaming WHEN 'EDGE' THEN d.eval_edge END)
  AND (CAST($8 AS text) IS NULL OR EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id
    AND a.lifecycle_state = CAST($9 AS text)))
  AND (CAST($10 AS text) IS NULL OR EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id
    AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(a.labels AS jsonb)) WHERE value = CAST($11 AS text))))
  AND (CAST($12 AS bigint) IS NULL OR EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id
    AND a.folder_id = CAST($13 AS bigint)))`;
const FILTER_PARAMS = 13;

/**
 * A page of the list sorted by `column` (then id), read in `scan` order: after the filters, the
 * lower bound (a flag, 1 when set, the sort key twice and the id: rows past it in ascending order),
 * the upper bound (the same, rows before it), then the limit.
 */
function page(column: string, type: 'text' | 'bigint', scan: 'ASC' | 'DESC') {
  const bound = (op: '>' | '<') => `(? = 0 OR d.${column} ${op} ? OR (d.${column} = ? AND d.id ${op} ?))`;
  // Names in code-point order on PostgreSQL too, whatever the database's collation (SQLite's BINARY).
  const key = type === 'text' ? `d.${column} COLLATE "C"` : `d.${column}`;
  const boundPg = (op: '>' | '<', n: number) =>
    `(CAST($${n} AS integer) = 0 OR ${key} ${op} CAST($${n + 1} AS ${type})
      OR (d.${column} = CAST($${n + 2} AS ${type}) AND d.id ${op} CAST($${n + 3} AS bigint)))`;
  const n = FILTER_PARAMS + 1;
  return {
    sqlite: `SELECT ${COLUMNS} FROM segment_definitions d WHERE ${FILTER} AND ${bound('>')} AND ${bound('<')}
      ORDER BY d.${column} ${scan}, d.id ${scan} LIMIT ?`,
    postgres: `SELECT ${COLUMNS_PG} FROM segment_definitions d WHERE ${FILTER_PG} AND ${boundPg('>', n)}
      AND ${boundPg('<', n + 4)} ORDER BY ${key} ${scan}, d.id ${scan} LIMIT $${n + 8}`,
  };
}

const q = statements('definitions', {
  /**
   * The sandbox's definitions among the ids of the JSON array, by id. `+sandbox_id` and `ORDER BY id`:
   * see audiences' byIds (src/domain/audiences.ts).
   */
  byIds: {
    sqlite: `SELECT ${COLUMNS} FROM segment_definitions WHERE +sandbox_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    postgres: `SELECT ${COLUMNS_PG} FROM segment_definitions WHERE sandbox_id = $1
      AND id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb))) ORDER BY id`,
  },
  /** The audiences each definition of the JSON array names, in audience id order. */
  dependencies: {
    sqlite: `SELECT definition_id AS "definitionId", audience_id AS "audienceId" FROM definition_dependencies
      WHERE sandbox_id = ? AND definition_id IN (SELECT value FROM json_each(?)) ORDER BY audience_id, definition_id`,
    postgres: `SELECT definition_id AS "definitionId", audience_id AS "audienceId" FROM definition_dependencies
      WHERE sandbox_id = $1 AND definition_id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($2 AS jsonb)))
      ORDER BY audience_id, definition_id`,
  },
  deleteDependencies: {
    sqlite: 'DELETE FROM definition_dependencies WHERE definition_id = ?',
    postgres: 'DELETE FROM definition_dependencies WHERE definition_id = $1',
  },
  /** Parameters: sandbox, definition, the audience ids as a JSON array. */
  insertDependencies: {
    sqlite: `INSERT INTO definition_dependencies (sandbox_id, definition_id, audience_id)
      SELECT ?, ?, value FROM json_each(?)`,
    postgres: `INSERT INTO definition_dependencies (sandbox_id, definition_id, audience_id)
      SELECT $1, $2, CAST(value AS bigint) FROM jsonb_array_elements_text(CAST($3 AS jsonb))`,
  },
  idByName: {
    sqlite: 'SELECT id FROM segment_definitions WHERE sandbox_id = ? AND name_key = ?',
    postgres: 'SELECT id FROM segment_definitions WHERE sandbox_id = $1 AND name_key = $2',
  },
  /**
   * Parameters: sandbox, audience, name, name key, description, format, value, text, eligible
   * streaming and edge (0 or 1), eligibility reasons, referenced fields, batch, streaming, edge
   * (0 or 1), warnings, TTL, created and updated at.
   */
  insert: {
    sqlite: `INSERT INTO segment_definitions (sandbox_id, audience_id, name, name_key, description, expression_format,
      expression_value, expression_text, eligible_streaming, eligible_edge, eligibility_reasons, referenced_fields,
      eval_batch, eval_streaming, eval_edge, evaluation_warnings, ttl_in_days, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
    postgres: `INSERT INTO segment_definitions (sandbox_id, audience_id, name, name_key, description, expression_format,
      expression_value, expression_text, eligible_streaming, eligible_edge, eligibility_reasons, referenced_fields,
      eval_batch, eval_streaming, eval_edge, evaluation_warnings, ttl_in_days, created_at, updated_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CAST(CAST($9 AS integer) AS boolean), CAST(CAST($10 AS integer) AS boolean),
        $11, $12, CAST(CAST($13 AS integer) AS boolean), CAST(CAST($14 AS integer) AS boolean),
        CAST(CAST($15 AS integer) AS boolean), $16, $17, $18, $19) RETURNING ${COLUMNS_PG}`,
  },
  /** The audience's definition id, once the definition exists. Parameters: definition, audience. */
  linkAudience: {
    sqlite: 'UPDATE audiences SET definition_id = ? WHERE id = ?',
    postgres: 'UPDATE audiences SET definition_id = $1 WHERE id = $2',
  },
  /** SET's parameters, then the new version, updated at, the id and the expected version; no row when it moved. */
  update: {
    sqlite: `UPDATE segment_definitions SET ${SET}, version = ?, updated_at = ? WHERE id = ? AND version = ?
      RETURNING ${COLUMNS}`,
    postgres: `UPDATE segment_definitions SET ${SET_PG}, version = $${N + 1}, updated_at = $${N + 2}
      WHERE id = $${N + 3} AND version = $${N + 4} RETURNING ${COLUMNS_PG}`,
  },
  pageNameAsc: page('name_key', 'text', 'ASC'),
  pageNameDesc: page('name_key', 'text', 'DESC'),
  pageCreatedAsc: page('created_at', 'bigint', 'ASC'),
  pageCreatedDesc: page('created_at', 'bigint', 'DESC'),
  pageUpdatedAsc: page('updated_at', 'bigint', 'ASC'),
  pageUpdatedDesc: page('updated_at', 'bigint', 'DESC'),
  count: {
    sqlite: `SELECT count(*) AS n FROM segment_definitions d WHERE ${FILTER}`,
    postgres: `SELECT count(*) AS n FROM segment_definitions d WHERE ${FILTER_PG}`,
  },
  /** Names of the definitions whose referenced fields hold the path, in id order. */
  usingField: {
    sqlite: `SELECT name FROM segment_definitions
      WHERE sandbox_id = ? AND EXISTS (SELECT 1 FROM json_each(referenced_fields) WHERE value = ?) ORDER BY id`,
    postgres: `SELECT name FROM segment_definitions WHERE sandbox_id = $1
      AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(referenced_fields AS jsonb)) WHERE value = $2) ORDER BY id`,
  },
});

function toDefinition(row: DefinitionRow): SegmentDefinition {
  return {
    id: row.id,
    sandboxId: row.sandboxId,
    audienceId: row.audienceId,
    name: row.name,
    description: row.description,
    expression: { format: row.expressionFormat as PqlFormat, value: row.expressionValue },
    expressionText: row.expressionText,
    evaluationInfo: { batch: row.evalBatch === 1, streaming: row.evalStreaming === 1, edge: row.evalEdge === 1 },
    eligibility: {
      batch: true,
      streaming: row.eligibleStreaming === 1,
      edge: row.eligibleEdge === 1,
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

/** What a definition version keeps of a definition. */
function versionOf(def: SegmentDefinition) {
  return {
    id: def.id,
    sandboxId: def.sandboxId,
    version: def.version,
    expressionFormat: def.expression.format,
    expressionValue: def.expression.value,
    expressionText: def.expressionText,
    evalBatch: def.evaluationInfo.batch,
    evalStreaming: def.evaluationInfo.streaming,
    evalEdge: def.evaluationInfo.edge,
  };
}

function definitionMap(rows: readonly DefinitionRow[]): Map<number, SegmentDefinition> {
  const out = new Map<number, SegmentDefinition>();
  for (const row of rows) out.set(row.id, toDefinition(row));
  return out;
}

/** The sandbox's definitions among `ids`, by id. */
export async function definitionsByIds(
  conn: Store,
  sandboxId: number,
  ids: readonly number[],
): Promise<Map<number, SegmentDefinition>> {
  if (ids.length === 0) return new Map();
  return definitionMap(await conn.all<DefinitionRow>(q.byIds, [sandboxId, JSON.stringify(ids)]));
}

/**
 * definitionsByIds for the code that stays synchronous on SQLite (the streaming step): the same
 * statement, prepared on the connection.
 */
export function definitionsByIdsSync(
  conn: Connection,
  sandboxId: number,
  ids: readonly number[],
): Map<number, SegmentDefinition> {
  if (ids.length === 0) return new Map();
  return definitionMap(preparedOn(conn.sqlite, q.byIds).all(sandboxId, JSON.stringify(ids)) as DefinitionRow[]);
}

export async function requireDefinition(conn: Store, sandboxId: number, id: number): Promise<SegmentDefinition> {
  const def = (await definitionsByIds(conn, sandboxId, [id])).get(id);
  if (!def) {
    const gid = encodeGlobalId('SegmentDefinition', id);
    throw notFound(`No segment definition with id "${gid}" in this sandbox`, gid);
  }
  return def;
}

type DependencyRow = { definitionId: number; audienceId: number };

function dependencyMap(definitionIds: readonly number[], rows: readonly DependencyRow[]): Map<number, number[]> {
  const out = new Map<number, number[]>(definitionIds.map((id) => [id, []]));
  for (const r of rows) out.get(r.definitionId)?.push(r.audienceId);
  return out;
}

/** Audience ids each definition names through inSegment. */
export async function dependenciesOf(
  conn: Store,
  sandboxId: number,
  definitionIds: readonly number[],
): Promise<Map<number, number[]>> {
  if (definitionIds.length === 0) return new Map();
  const rows = await conn.all<DependencyRow>(q.dependencies, [sandboxId, JSON.stringify(definitionIds)]);
  return dependencyMap(definitionIds, rows);
}

/** dependenciesOf for the code that stays synchronous on SQLite: the same statement, prepared on the connection. */
export function dependenciesOfSync(
  conn: Connection,
  sandboxId: number,
  definitionIds: readonly number[],
): Map<number, number[]> {
  if (definitionIds.length === 0) return new Map();
  const rows = preparedOn(conn.sqlite, q.dependencies).all(sandboxId, JSON.stringify(definitionIds));
  return dependencyMap(definitionIds, rows as DependencyRow[]);
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
    eligibleStreaming: checked.checked.eligibility.streaming ? 1 : 0,
    eligibleEdge: checked.checked.eligibility.edge ? 1 : 0,
    eligibilityReasons: JSON.stringify(checked.checked.eligibility.reasons),
    referencedFields: JSON.stringify(checked.checked.referencedFields),
  };
}

async function writeDependencies(
  conn: Store,
  sandboxId: number,
  definitionId: number,
  audienceIds: readonly number[],
): Promise<void> {
  await conn.run(q.deleteDependencies, [definitionId]);
  if (audienceIds.length > 0)
    await conn.run(q.insertDependencies, [sandboxId, definitionId, JSON.stringify(audienceIds)]);
}

async function assertDefinitionNameFree(
  conn: Store,
  sandboxId: number,
  name: string,
  exceptId?: number,
): Promise<void> {
  const row = await conn.get<{ id: number }>(q.idByName, [sandboxId, name.toLowerCase()]);
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
  conn: Store,
  sandboxId: number,
  input: CreateDefinitionInput,
  now = Date.now(),
): Promise<SegmentDefinition> {
  const name = validName(input.name);
  const ttlInDays = validTtl(input.ttlInDays);
  return writeUnit(conn, async (tx) => {
    const checked = await checkExpression(tx, sandboxId, input.expression, { definition: true });
    await assertRunnable(tx, sandboxId, checked.checked);
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
    const columns = expressionColumns(input.expression, checked);
    const row = (await tx.get<DefinitionRow>(q.insert, [
      sandboxId,
      audience.id,
      name,
      name.toLowerCase(),
      input.description ?? null,
      columns.expressionFormat,
      columns.expressionValue,
      columns.expressionText,
      columns.eligibleStreaming,
      columns.eligibleEdge,
      columns.eligibilityReasons,
      columns.referencedFields,
      evaluation.batch ? 1 : 0,
      evaluation.streaming ? 1 : 0,
      evaluation.edge ? 1 : 0,
      JSON.stringify(warnings),
      ttlInDays,
      now,
      now,
    ]))!;
    await tx.run(q.linkAudience, [row.id, audience.id]);
    await writeDependencies(tx, sandboxId, row.id, checked.checked.referencedAudiences);
    const created = toDefinition(row);
    await recordDefinitionVersion(tx, versionOf(created), input.changedBy ?? OPEN_ACTOR, now);
    return created;
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
  conn: Store,
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
    const set: DefinitionSet = {};
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
      const checked = await checkExpression(tx, sandboxId, input.expression, {
        definition: true,
        selfAudienceId: def.audienceId,
      });
      await assertRunnable(tx, sandboxId, checked.checked);
      Object.assign(set, expressionColumns(input.expression, checked));
      eligibility = checked.checked.eligibility;
      await writeDependencies(tx, sandboxId, id, checked.checked.referencedAudiences);
    }
    if (input.evaluationInfo || input.expression) {
      const { info, warnings } = validEvaluation(input.evaluationInfo, def.evaluationInfo, eligibility);
      set.evaluationWarnings = JSON.stringify(warnings);
      set.evalBatch = info.batch ? 1 : 0;
      set.evalStreaming = info.streaming ? 1 : 0;
      set.evalEdge = info.edge ? 1 : 0;
    }
    const row = await tx.get<DefinitionRow>(q.update, [...setParams(set), def.version + 1, now, id, def.version]);
    if (!row) throw conflict('The definition changed while this update ran: reload and try again');
    const updated = toDefinition(row);
    const changed =
      updated.expressionText !== def.expressionText ||
      updated.evaluationInfo.batch !== def.evaluationInfo.batch ||
      updated.evaluationInfo.streaming !== def.evaluationInfo.streaming ||
      updated.evaluationInfo.edge !== def.evaluationInfo.edge;
    if (changed) await recordDefinitionVersion(tx, versionOf(updated), input.changedBy ?? OPEN_ACTOR, now);
    await applyAudienceChanges(
      tx,
      audience,
      { name: set.name, description: input.description, lifecycleState: input.lifecycleState, labels: input.labels },
      null,
      now,
    );
    return updated;
  });
}

/** Deletes a definition with its audience and memberships; CONFLICT while other definitions or a schedule use it. */
export async function deleteSegmentDefinition(conn: Store, sandboxId: number, id: number): Promise<number> {
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

/** The page statement per sort field and the order the rows are read in. */
const PAGES = {
  NAME: { ASC: q.pageNameAsc, DESC: q.pageNameDesc },
  CREATED_AT: { ASC: q.pageCreatedAsc, DESC: q.pageCreatedDesc },
  UPDATED_AT: { ASC: q.pageUpdatedAsc, DESC: q.pageUpdatedDesc },
} as const;

/**
 * A keyset bound's parameters (a flag, the sort key twice, the id): none when there is no cursor,
 * undefined when the cursor's key is not of the sort field's type (a hand-made one: no row passes).
 */
function boundParams(key: readonly unknown[] | undefined, field: DefinitionOrderField): unknown[] | undefined {
  if (key === undefined) return [0, null, null, null];
  const [value, id] = key;
  const typed = field === 'NAME' ? typeof value === 'string' : Number.isSafeInteger(value);
  if (!typed || !Number.isSafeInteger(id)) return undefined;
  return [1, value, value, id];
}

export async function listSegmentDefinitions(
  conn: Store,
  sandboxId: number,
  filter: DefinitionFilter = {},
  order: { field: DefinitionOrderField; direction: OrderDirection } = { field: 'CREATED_AT', direction: 'ASC' },
  args: PageArgs = {},
): Promise<Page<SegmentDefinition> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const twice = (value: unknown) => [value ?? null, value ?? null];
  const base = [
    sandboxId,
    ...twice(filter.nameContains ? filter.nameContains.toLowerCase() : null),
    ...twice(filter.updatedAfter),
    ...twice(filter.evaluationMethod),
    ...twice(filter.lifecycleState),
    ...twice(filter.label),
    ...twice(filter.folderId),
  ];
  // `after` bounds the side further along the list: above its key when the list ascends.
  const descending = order.direction === 'DESC';
  const [lowerKey, upperKey] = descending ? [query.before, query.after] : [query.after, query.before];
  const lower = boundParams(lowerKey, order.field);
  const upper = boundParams(upperKey, order.field);
  const scan = (query.direction === 'forward') !== descending ? 'ASC' : 'DESC';
  const rows =
    lower && upper
      ? await conn.all<DefinitionRow>(PAGES[order.field][scan], [...base, ...lower, ...upper, query.fetch])
      : [];
  const sortKey = (r: DefinitionRow) =>
    order.field === 'NAME' ? r.nameKey : order.field === 'UPDATED_AT' ? r.updatedAt : r.createdAt;
  const page = toPage(rows, query, (r) => [sortKey(r), r.id]);
  return {
    ...page,
    items: page.items.map(toDefinition),
    totalCount: async () => Number((await conn.get<{ n: number }>(q.count, base))!.n),
  };
}

/** Definitions (ids) that read a schema field, so its type cannot change under them. */
export async function definitionsUsingField(
  conn: Store,
  sandboxId: number,
  cls: 'profile' | 'event',
  path: string,
): Promise<string[]> {
  const needle = cls === 'event' ? `xEvent.${path}` : path;
  return (await conn.all<{ name: string }>(q.usingField, [sandboxId, needle])).map((r) => `definition "${r.name}"`);
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
