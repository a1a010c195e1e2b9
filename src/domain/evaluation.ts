/**
 * Evaluating expressions and saved definitions against the store, outside jobs: the exact
 * matching set and its count (SQL engine), one profile on demand (JS engine), and the checked
 * expression of a definition and the edge definitions of a sandbox, kept per connection.
 */
import { cacheKey } from '../db/connection-cache.js';
import type { Connection } from '../db/index.js';
import { preparedOn, statements } from '../db/statement.js';
import { writeStamp } from '../db/write-stamp.js';
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
import { type CheckedInput, checkExpressionSync, type ExpressionInput, tooLargeToRun } from './expressions.js';
import { encodeGlobalId } from './ids.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from './paging.js';
import { loadProfileDocument, type StoredProfileDocument } from './profile-documents.js';
import type { IdentityInput } from './profile-ingest.js';
import { assertIdentity } from './profile-ingest.js';
import { profileIdByIdentitySync } from './profiles.js';

/** How one page of matching profiles is read, whichever database reads it: in id order, one extra row. */
export interface MatchingPagePlan {
  query: ReturnType<typeof pageQuery>;
  /** The cursors as id bounds on the profile scan (`p.id`), with `?` parameters. */
  bounds: IdCondition[];
  order: 'ASC' | 'DESC';
  /** How many ids to read (the page and one more, which says whether there is a next page). */
  fetch: number;
}

/**
 * The paging of matching ids (the part both databases share): cursors are profile ids; one that
 * is not an integer (a hand-made one) bounds the scan so that no id passes, on either database.
 */
export function matchingPagePlan(args: PageArgs): MatchingPagePlan {
  const query = pageQuery(args);
  const bounds: IdCondition[] = [];
  if (query.after || query.before) {
    const { above, below } = integerBounds(query, 'ascending');
    if (query.after || above > below) bounds.push({ sql: 'p.id > ?', params: [above] });
    if (query.before || above > below) bounds.push({ sql: 'p.id < ?', params: [below] });
  }
  return { query, bounds, order: query.direction === 'forward' ? 'ASC' : 'DESC', fetch: query.fetch };
}

/** The ids a page plan read, as the page. */
export function matchingPage(ids: number[], plan: MatchingPagePlan): Page<number> {
  return toPage(ids, plan.query, (id) => [id]);
}

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
  const { checked } = checkExpressionSync(conn, sandboxId, input, { definition: true });
  const plan = matchingPagePlan(args);
  const page = compileToSql(checked, { now: at, sandboxId, where: [...guard, ...plan.bounds] });
  const ids = prepareFor(conn, checked, `SELECT id FROM (${page.sql}) ORDER BY id ${plan.order} LIMIT ?`)
    .pluck()
    .all(...page.params, plan.fetch) as number[];
  return matchingPage(ids, plan);
}

/** How many profiles qualify (SQL engine); `guard` as in matchingProfileIds. */
export function countMatching(
  conn: Connection,
  sandboxId: number,
  input: ExpressionInput,
  at: number,
  guard: readonly IdCondition[] = [],
): number {
  const { checked } = checkExpressionSync(conn, sandboxId, input, { definition: true });
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

/** A definition's checked expression, with the version and text it was checked from. */
interface CheckedEntry {
  sandboxId: number;
  version: number;
  expressionText: string;
  checked: CheckedExpression;
}

// Checked definitions by id, each used only for the very sandbox, version and text it was checked
// from: a new row can never get an old expression. Compared field by field, not through a key
// string, which cost a concatenation of the whole text per definition per evaluation.
const CHECKED_DEFINITIONS = cacheKey<Map<number, CheckedEntry>>('checked definitions');

/** What identifies a definition's expression: enough to check it, or to find its checked form. */
export type DefinitionExpression = Pick<SegmentDefinition, 'id' | 'sandboxId' | 'version' | 'expressionText'>;

/** A definition's checked expression, cached by id, version and text. */
export function checkedDefinition(conn: Connection, def: DefinitionExpression): CheckedExpression {
  const cache = conn.cache.get(CHECKED_DEFINITIONS, () => new Map<number, CheckedEntry>());
  const entry = cache.get(def.id);
  if (
    entry &&
    entry.sandboxId === def.sandboxId &&
    entry.version === def.version &&
    entry.expressionText === def.expressionText
  ) {
    return entry.checked;
  }
  const { checked } = checkExpressionSync(conn, def.sandboxId, { format: 'PQL_TEXT', value: def.expressionText });
  cache.set(def.id, { sandboxId: def.sandboxId, version: def.version, expressionText: def.expressionText, checked });
  return checked;
}

const DEFINITION_COLUMNS = `d.id AS id, d.sandbox_id AS "sandboxId", a.id AS "audienceId", d.version AS version,
  d.expression_text AS "expressionText"`;

/**
 * The definitions an edge evaluation runs: only the columns that find the checked expression
 * (the full rows cost more to read and map than 100 evaluations take).
 */
export const EDGE_DEFINITIONS = statements('evaluation', {
  /** Parameters: sandbox. Every edge-enabled definition of a live audience. */
  edgeEnabled: {
    sqlite: `SELECT ${DEFINITION_COLUMNS} FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id
       WHERE d.sandbox_id = ? AND d.eval_edge = 1 AND a.lifecycle_state IN ('DRAFT', 'PUBLISHED')`,
    postgres: `SELECT ${DEFINITION_COLUMNS} FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id
       WHERE d.sandbox_id = $1 AND d.eval_edge AND a.lifecycle_state IN ('DRAFT', 'PUBLISHED')`,
  },
  /**
   * Parameters: sandbox, audience ids (JSON array). One row per audience found, its definition's columns null when
   * it has none, by audience id. `+a.sandbox_id` and `ORDER BY a.id`: see audiences' byIds (src/domain/audiences.ts);
   * the order is that of the evaluation's results.
   */
  audiences: {
    sqlite: `SELECT ${DEFINITION_COLUMNS}
       FROM audiences a LEFT JOIN segment_definitions d ON d.id = a.definition_id
       WHERE +a.sandbox_id = ? AND a.id IN (SELECT value FROM json_each(?)) ORDER BY a.id`,
    postgres: `SELECT ${DEFINITION_COLUMNS}
       FROM audiences a LEFT JOIN segment_definitions d ON d.id = a.definition_id
       WHERE a.sandbox_id = $1 AND a.id IN (SELECT value::bigint FROM jsonb_array_elements_text($2::jsonb)) ORDER BY a.id`,
  },
});

export type EdgeDefinition = DefinitionExpression & { audienceId: number };
export type EdgeRow = Omit<EdgeDefinition, 'id'> & { id: number | null };

/** Which statement reads the definitions an edge evaluation runs, with its parameters. */
export function edgeDefinitionsRead(
  sandboxId: number,
  audienceIds: readonly number[] | null | undefined,
): { statement: (typeof EDGE_DEFINITIONS)[keyof typeof EDGE_DEFINITIONS]; params: unknown[] } {
  return audienceIds
    ? { statement: EDGE_DEFINITIONS.audiences, params: [sandboxId, JSON.stringify(audienceIds)] }
    : { statement: EDGE_DEFINITIONS.edgeEnabled, params: [sandboxId] };
}

/**
 * The definitions chosen from the rows read: an audience id that names no audience here is
 * NOT_FOUND, not skipped; an audience without a definition is skipped.
 */
export function chosenDefinitions(
  rows: readonly EdgeRow[],
  audienceIds: readonly number[] | null | undefined,
): EdgeDefinition[] {
  if (audienceIds) {
    const found = new Set(rows.map((r) => r.audienceId));
    const missing = audienceIds.find((id) => !found.has(id));
    if (missing !== undefined) {
      const globalId = encodeGlobalId('Audience', missing);
      throw notFound(`No Audience with id "${globalId}" in this sandbox`, globalId);
    }
  }
  return rows.filter((r): r is EdgeDefinition => r.id !== null);
}

/** A sandbox's edge-enabled definitions as read at a write stamp. */
interface EdgeSet {
  stamp: string;
  definitions: readonly EdgeDefinition[];
}

// The sandbox's edge-enabled definitions by sandbox, kept while the connection's write stamp
// stays put (db/write-stamp.ts: any commit, by this connection or another, moves it): reading
// the 100 rows back was half of an evaluation's time on its thread (the `edge` bench).
const EDGE_SETS = cacheKey<Map<number, EdgeSet>>('edge definition sets');

function edgeDefinitions(
  conn: Connection,
  sandboxId: number,
  audienceIds: readonly number[] | null | undefined,
): readonly EdgeDefinition[] {
  const { statement, params } = edgeDefinitionsRead(sandboxId, audienceIds);
  const read = () => chosenDefinitions(preparedOn(conn.sqlite, statement).all(...params) as EdgeRow[], audienceIds);
  if (audienceIds) return read();
  const sets = conn.cache.get(EDGE_SETS, () => new Map<number, EdgeSet>());
  // The stamp is taken before the rows: a commit between the two costs one more read, never a
  // stale set kept under a new stamp.
  const stamp = writeStamp(conn);
  let set = sets.get(sandboxId);
  if (set?.stamp !== stamp) {
    set = { stamp, definitions: read() };
    sets.set(sandboxId, set);
  }
  return set.definitions;
}

/** What an edge evaluation runs over a loaded document; the readers of each database gather it. */
export interface DocumentEvaluation {
  /** The checked expression, when one was given. */
  expression?: CheckedExpression;
  /** The definitions to run (none when only an expression was given). */
  definitions: readonly EdgeDefinition[];
  /** A definition's checked expression. */
  checkedOf(def: EdgeDefinition): CheckedExpression;
  at: number;
  /** Called before each evaluation; throws to stop (the query workers' deadline). */
  checkpoint(): void;
}

/** Evaluates a loaded document (JS engine): the part of evaluateProfile both databases share. */
export function evaluateDocument(
  doc: StoredProfileDocument,
  e: DocumentEvaluation,
): Omit<EdgeEvaluation, 'durationMs'> {
  let qualifies: boolean | null = null;
  let value: unknown = null;
  e.checkpoint();
  if (e.expression) {
    const { type } = e.expression;
    const raw = evaluateValue(e.expression, doc, { now: e.at });
    if (type.kind === 'boolean') qualifies = raw === true;
    else if (type.kind === 'array') qualifies = Array.isArray(raw) && raw.length > 0;
    value = valueAsJson(raw, type);
  }
  const audienceIds: number[] = [];
  for (const def of e.definitions) {
    e.checkpoint();
    if (evaluate(e.checkedOf(def), doc, { now: e.at })) audienceIds.push(def.audienceId);
  }
  audienceIds.sort((a, b) => a - b);
  return { qualifies, value, audienceIds };
}

/** Whether an edge evaluation runs definitions: without an expression, or with audiences named. */
export function runsDefinitions(options: {
  expression?: ExpressionInput | null;
  audienceIds?: readonly number[] | null;
}): boolean {
  return !options.expression || !!options.audienceIds;
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
  const started = performance.now();
  assertIdentity(identity);
  const profileId = profileIdByIdentitySync(conn, sandboxId, identity);
  if (profileId === undefined) throw notFound(`No profile has identity ${identity.namespace}:${identity.id}`);
  let expression: CheckedInput | undefined;
  if (options.expression) expression = checkExpressionSync(conn, sandboxId, options.expression, { definition: false });
  const doc = loadProfileDocument(conn, sandboxId, profileId)!;
  const definitions = runsDefinitions(options) ? edgeDefinitions(conn, sandboxId, options.audienceIds) : [];
  const result = evaluateDocument(doc, {
    expression: expression?.checked,
    definitions,
    checkedOf: (def) => checkedDefinition(conn, def),
    at: options.at,
    checkpoint: options.checkpoint ?? (() => {}),
  });
  return { ...result, durationMs: performance.now() - started };
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
