/**
 * Evaluating expressions and saved definitions against the store, outside jobs: the exact
 * matching set and its count (SQL engine), one profile on demand (JS engine), and the checked
 * expression of a definition, kept per connection.
 */
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import {
  type CheckedExpression,
  compileToSql,
  evaluate,
  evaluateValue,
  type IdCondition,
  type PqlType,
} from '../pql/index.js';
import type { SegmentDefinition } from './definitions.js';
import { notFound } from './errors.js';
import { type CheckedInput, checkExpression, type ExpressionInput, tooLargeToRun } from './expressions.js';
import { encodeGlobalId } from './ids.js';
import { type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { loadProfileDocument } from './profile-documents.js';
import type { IdentityInput } from './profile-ingest.js';
import { assertIdentity } from './profile-ingest.js';
import { profileIdByIdentitySync } from './profiles.js';

/**
 * One page of the exact set of qualifying profiles (SQL engine), in id order, as ids. `guard`
 * conditions join the profile scan: the query workers put their deadline check there.
 */
export function matchingProfileIds(
  conn: Connection,
  sandboxId: number,
  input: ExpressionInput,
  at: number,
  args: PageArgs,
  guard: readonly IdCondition[] = [],
): Page<number> {
  const { checked } = checkExpression(conn, sandboxId, input, { definition: true });
  const query = pageQuery(args);
  const bounds: IdCondition[] = [...guard];
  if (query.after) bounds.push({ sql: 'p.id > ?', params: [Number(query.after[0])] });
  if (query.before) bounds.push({ sql: 'p.id < ?', params: [Number(query.before[0])] });
  const page = compileToSql(checked, { now: at, sandboxId, where: bounds });
  const order = query.direction === 'forward' ? 'ASC' : 'DESC';
  const ids = prepareFor(conn, checked, `SELECT id FROM (${page.sql}) ORDER BY id ${order} LIMIT ?`)
    .pluck()
    .all(...page.params, query.fetch) as number[];
  return toPage(ids, query, (id) => [id]);
}

/** How many profiles qualify (SQL engine); `guard` as in matchingProfileIds. */
export function countMatching(
  conn: Connection,
  sandboxId: number,
  input: ExpressionInput,
  at: number,
  guard: readonly IdCondition[] = [],
): number {
  const { checked } = checkExpression(conn, sandboxId, input, { definition: true });
  const all = compileToSql(checked, { now: at, sandboxId, where: guard });
  return prepareFor(conn, checked, `SELECT count(*) FROM (${all.sql})`)
    .pluck()
    .get(...all.params) as number;
}

/** Prepares an ad-hoc expression's statement; SQLite refusing it as too large is the expression's fault, not ours. */
function prepareFor(conn: Connection, checked: CheckedExpression, text: string) {
  try {
    return conn.sqlite.prepare(text);
  } catch (err) {
    throw tooLargeToRun(err, checked) ?? err;
  }
}

export interface EdgeEvaluation {
  /** For an expression: whether it holds (a boolean true, or a non-empty array); null for other values. */
  qualifies: boolean | null;
  /** For an expression: its value as JSON (datetimes as ISO text, missing as null). */
  value?: unknown;
  /** Audience ids whose definitions the profile qualifies for. */
  audienceIds: number[];
  durationMs: number;
}

// Checked definitions keyed by id, version and the expression itself: edge evaluation re-uses them
// across requests, and a key that carries the text can never hand a new row an old expression.
const CHECKED_DEFINITIONS = cacheKey<Map<string, CheckedExpression>>('checked definitions');

/** What identifies a definition's expression: enough to check it, or to find its checked form. */
type DefinitionExpression = Pick<SegmentDefinition, 'id' | 'sandboxId' | 'version' | 'expressionText'>;

/** A definition's checked expression, cached by id, version and text. */
export function checkedDefinition(conn: Connection, def: DefinitionExpression): CheckedExpression {
  const cache = conn.cache.get(CHECKED_DEFINITIONS, () => new Map<string, CheckedExpression>());
  const key = `${def.sandboxId}:${def.id}:${def.version}:${def.expressionText}`;
  let checked = cache.get(key);
  if (!checked) {
    checked = checkExpression(conn, def.sandboxId, { format: 'PQL_TEXT', value: def.expressionText }).checked;
    cache.set(key, checked);
  }
  return checked;
}

function edgeStatements(sqlite: Connection['sqlite']) {
  const columns = `d.id AS id, d.sandbox_id AS sandboxId, d.audience_id AS audienceId, d.version AS version,
    d.expression_text AS expressionText`;
  return {
    edgeEnabled: sqlite.prepare(
      `SELECT ${columns} FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id
       WHERE d.sandbox_id = ? AND d.eval_edge = 1 AND a.lifecycle_state IN ('DRAFT', 'PUBLISHED')`,
    ),
    audiences: sqlite.prepare(
      `SELECT a.id AS audienceId, d.id AS id, d.sandbox_id AS sandboxId, d.version AS version,
         d.expression_text AS expressionText
       FROM audiences a LEFT JOIN segment_definitions d ON d.id = a.definition_id
       WHERE a.sandbox_id = ? AND a.id IN (SELECT value FROM json_each(?))`,
    ),
  };
}

const EDGE_STATEMENTS = cacheKey<ReturnType<typeof edgeStatements>>('edge evaluation statements');

type EdgeDefinition = DefinitionExpression & { audienceId: number };

/**
 * The definitions an edge evaluation runs: only the columns that find the checked expression
 * (the full rows cost more to read and map than 100 evaluations take), in one prepared statement.
 * An audience id that names no audience here is NOT_FOUND, not skipped.
 */
function edgeDefinitions(
  conn: Connection,
  sandboxId: number,
  audienceIds: readonly number[] | null | undefined,
): EdgeDefinition[] {
  const s = conn.cache.get(EDGE_STATEMENTS, () => edgeStatements(conn.sqlite));
  if (!audienceIds) return s.edgeEnabled.all(sandboxId) as EdgeDefinition[];
  const rows = s.audiences.all(sandboxId, JSON.stringify(audienceIds)) as (Omit<EdgeDefinition, 'id'> & {
    id: number | null;
  })[];
  const found = new Set(rows.map((r) => r.audienceId));
  const missing = audienceIds.find((id) => !found.has(id));
  if (missing !== undefined) {
    const globalId = encodeGlobalId('Audience', missing);
    throw notFound(`No Audience with id "${globalId}" in this sandbox`, globalId);
  }
  return rows.filter((r): r is EdgeDefinition => r.id !== null);
}

/**
 * Evaluates one profile with the JS engine: an expression, or the definitions of the given
 * audiences (default: every edge-enabled definition of the sandbox).
 */
export function evaluateProfile(
  conn: Connection,
  sandboxId: number,
  identity: IdentityInput,
  options: {
    expression?: ExpressionInput | null;
    audienceIds?: readonly number[] | null;
    at: number;
    /** Called before each evaluation; throws to stop (the query workers' deadline). */
    checkpoint?: () => void;
  },
): EdgeEvaluation {
  const checkpoint = options.checkpoint ?? (() => {});
  const started = performance.now();
  assertIdentity(identity);
  const profileId = profileIdByIdentitySync(conn, sandboxId, identity);
  if (profileId === undefined) throw notFound(`No profile has identity ${identity.namespace}:${identity.id}`);
  let expression: CheckedInput | undefined;
  if (options.expression) expression = checkExpression(conn, sandboxId, options.expression, { definition: false });
  const doc = loadProfileDocument(conn, sandboxId, profileId)!;
  let qualifies: boolean | null = null;
  let value: unknown = null;
  checkpoint();
  if (expression) {
    const { type } = expression.checked;
    const raw = evaluateValue(expression.checked, doc, { now: options.at });
    if (type.kind === 'boolean') qualifies = raw === true;
    else if (type.kind === 'array') qualifies = Array.isArray(raw) && raw.length > 0;
    value = valueAsJson(raw, type);
  }
  const audienceIds: number[] = [];
  if (!expression || options.audienceIds) {
    for (const def of edgeDefinitions(conn, sandboxId, options.audienceIds)) {
      checkpoint();
      if (evaluate(checkedDefinition(conn, def), doc, { now: options.at })) audienceIds.push(def.audienceId);
    }
    audienceIds.sort((a, b) => a - b);
  }
  return { qualifies, value, audienceIds, durationMs: performance.now() - started };
}

/** An evaluated value as plain JSON: the engines hold datetimes as epoch ms and events as items. */
function valueAsJson(raw: unknown, type: PqlType): unknown {
  if (raw === undefined || raw === null) return null;
  if (type.kind === 'datetime' && typeof raw === 'number') return new Date(raw).toISOString();
  if (type.kind === 'array' && type.of.kind === 'datetime' && Array.isArray(raw)) {
    return raw.map((t) => (typeof t === 'number' ? new Date(t).toISOString() : null));
  }
  const json = JSON.parse(JSON.stringify(raw)) as unknown;
  // A map of datetimes (`map(e => mapEntry(…, e.timestamp))`): its values as ISO text too.
  if (type.kind === 'map' && type.of.kind === 'datetime' && typeof json === 'object' && json !== null) {
    const entries = Object.entries(json).map(([k, t]) => [k, typeof t === 'number' ? new Date(t).toISOString() : null]);
    return Object.fromEntries(entries);
  }
  return json;
}
