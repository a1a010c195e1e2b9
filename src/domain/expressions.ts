import type { Connection } from '../db/index.js';
import { preparedOn, type Statement, type StatementRunner, statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import {
  audienceReferences,
  type CheckedExpression,
  type CheckOptions,
  check,
  checkDefinition,
  compilePredicate,
  compileToSql,
  type Eligibility,
  type ExpressionNode,
  fromJson,
  PqlError,
  type PqlErrorCode,
  type PqlJson,
  parse,
  print,
  type ResolvedAudience,
  toJson,
  typeToString,
} from '../pql/index.js';
import { payloadType } from './external-audiences/payload-type.js';
import { internalId } from './ids.js';
import { catalogOf, readSchemaFields, sandboxCatalog } from './profile-schema.js';

export const PQL_FORMATS = ['PQL_TEXT', 'PQL_JSON'] as const;
export type PqlFormat = (typeof PQL_FORMATS)[number];
/** The expression languages a definition can be written in (only PQL). */
export const EXPRESSION_TYPES = ['PQL'] as const;

export interface ExpressionInput {
  format: PqlFormat;
  value: string;
}

export interface CheckedInput {
  checked: CheckedExpression;
  /** Canonical text: what is stored and compiled. */
  text: string;
  json: PqlJson;
}

/** Parses either form into the syntax tree; `value` is the text, or the JSON form as a JSON string. */
export function parseExpression(input: ExpressionInput): { ast: ExpressionNode; source: string } {
  if (input.format === 'PQL_JSON') {
    let json: unknown;
    try {
      json = JSON.parse(input.value);
    } catch (e) {
      throw new PqlError('PQL_SYNTAX_ERROR', `The PQL_JSON value is not JSON: ${(e as Error).message}`, input.value, {
        offset: 0,
        length: 0,
        line: 1,
        column: 1,
      });
    }
    const ast = fromJson(json);
    // Positions in errors then refer to the canonical text of the tree.
    const source = print(ast);
    return { ast: parse(source), source };
  }
  return { ast: parse(input.value), source: input.value };
}

/** An audience an `inSegment` reference may name, with its external audience's list fields when it is one. */
export interface AudienceRow {
  id: number;
  name: string;
  fields: string | null;
  identityField: string | null;
}

// Each with the external audience's fields, when it is one: they type `inSegment("…").payload`.
// The alias is quoted so PostgreSQL keeps its case.
const AUDIENCE_COLUMNS = 'a.id AS id, a.name AS name, e.fields AS fields, e.identity_field AS "identityField"';

/**
 * The checker's reads: the audience a reference names (each lookup binds the sandbox id, then the
 * key) and the audiences an audience's definition names through inSegment.
 */
const q = statements('expressions', {
  audienceById: {
    sqlite: `SELECT ${AUDIENCE_COLUMNS} FROM audiences a LEFT JOIN external_audiences e ON e.audience_id = a.id
      WHERE a.sandbox_id = ? AND a.id = ?`,
    postgres: `SELECT ${AUDIENCE_COLUMNS} FROM audiences a LEFT JOIN external_audiences e ON e.audience_id = a.id
      WHERE a.sandbox_id = $1 AND a.id = $2`,
  },
  audienceByExternalId: {
    sqlite: `SELECT ${AUDIENCE_COLUMNS} FROM external_audiences e JOIN audiences a ON a.id = e.audience_id
      WHERE e.sandbox_id = ? AND e.external_id = ?`,
    postgres: `SELECT ${AUDIENCE_COLUMNS} FROM external_audiences e JOIN audiences a ON a.id = e.audience_id
      WHERE e.sandbox_id = $1 AND e.external_id = $2`,
  },
  /** By lower-cased name, this service's own audience first. */
  audienceByName: {
    sqlite: `SELECT ${AUDIENCE_COLUMNS} FROM audiences a LEFT JOIN external_audiences e ON e.audience_id = a.id
      WHERE a.sandbox_id = ? AND a.name_key = ? ORDER BY a.namespace = 'segql' DESC, a.id LIMIT 1`,
    postgres: `SELECT ${AUDIENCE_COLUMNS} FROM audiences a LEFT JOIN external_audiences e ON e.audience_id = a.id
      WHERE a.sandbox_id = $1 AND a.name_key = $2 ORDER BY a.namespace = 'segql' DESC, a.id LIMIT 1`,
  },
  /** Parameters: sandbox, audience. */
  audienceDependencies: {
    sqlite: `SELECT dd.audience_id AS "audienceId" FROM definition_dependencies dd
      JOIN audiences a ON a.definition_id = dd.definition_id WHERE a.sandbox_id = ? AND a.id = ? ORDER BY dd.audience_id`,
    postgres: `SELECT dd.audience_id AS "audienceId" FROM definition_dependencies dd
      JOIN audiences a ON a.definition_id = dd.definition_id WHERE a.sandbox_id = $1 AND a.id = $2 ORDER BY dd.audience_id`,
  },
});

/** The statements that find the audience a reference names, on SQLite and PostgreSQL alike. */
export const AUDIENCE_LOOKUPS = {
  id: q.audienceById,
  externalId: q.audienceByExternalId,
  name: q.audienceByName,
} as const satisfies Record<string, Statement>;
export type AudienceLookup = keyof typeof AUDIENCE_LOOKUPS;

/**
 * The lookups a reference takes, in order; the first that finds a row decides. A global id, else
 * the id an external audience's creator chose (definitions written for other services name
 * audiences by it), else a name.
 */
export function audienceLookups(ref: string): { by: AudienceLookup; key: number | string }[] {
  const id = internalId(ref, 'Audience');
  if (id !== undefined) return [{ by: 'id', key: id }];
  return [
    { by: 'externalId', key: ref },
    { by: 'name', key: ref.toLowerCase() },
  ];
}

/** What the checker needs of an audience row. */
export function resolvedAudience(row: AudienceRow): ResolvedAudience {
  if (row.fields === null || row.identityField === null) return { id: row.id, name: row.name };
  return { id: row.id, name: row.name, payload: payloadType(row.fields, row.identityField) };
}

/**
 * How the checker sees this sandbox: its field catalogue and its audiences (by global id or name).
 * The checker asks synchronously, so these reads are the catalogue's statements prepared on the
 * SQLite connection (on PostgreSQL, pg-expressions.ts looks the audiences up first).
 */
function checkOptionsFor(conn: Connection, sandboxId: number, selfAudienceId?: number): CheckOptions {
  return {
    catalog: catalogOf(conn, sandboxId),
    selfAudienceId,
    resolveAudience: (ref) => {
      for (const { by, key } of audienceLookups(ref)) {
        const row = preparedOn(conn.sqlite, AUDIENCE_LOOKUPS[by]).get(sandboxId, key) as AudienceRow | undefined;
        if (row) return resolvedAudience(row);
      }
      return undefined;
    },
    audienceDependencies: (id) =>
      (preparedOn(conn.sqlite, q.audienceDependencies).all(sandboxId, id) as { audienceId: number }[]).map(
        (r) => r.audienceId,
      ),
  };
}

/**
 * Parses and checks an expression against the sandbox; `definition` requires a boolean.
 * Synchronous, on a SQLite connection: for the paths that are (a job worker's plan, streaming,
 * edge evaluation on the query pool); the API checks through `checkExpression`.
 */
export function checkExpressionSync(
  conn: Connection,
  sandboxId: number,
  input: ExpressionInput,
  options: { definition?: boolean; selfAudienceId?: number } = {},
): CheckedInput {
  const parsed = parseExpression(input);
  return checkParsed(parsed, checkOptionsFor(conn, sandboxId, options.selfAudienceId), options.definition);
}

/** The audiences an expression names, each looked up once, before a check that asks for them synchronously. */
export async function resolveAudiences(
  store: Pick<StatementRunner, 'get'>,
  sandboxId: number,
  ast: ExpressionNode,
): Promise<Map<string, ResolvedAudience>> {
  const audiences = new Map<string, ResolvedAudience>();
  for (const ref of audienceReferences(ast)) {
    for (const { by, key } of audienceLookups(ref)) {
      const row = await store.get<AudienceRow>(AUDIENCE_LOOKUPS[by], [sandboxId, key]);
      if (row) {
        audiences.set(ref, resolvedAudience(row));
        break;
      }
    }
  }
  return audiences;
}

/**
 * Parses and checks an expression against the sandbox through either database's handle (inside a
 * unit: its snapshot). The checker asks synchronously, so what it may ask is read first: the
 * sandbox's fields, every audience the expression names, and — when the expression is an
 * audience's own definition — the audiences those depend on, transitively, for the cycle check.
 */
export async function checkExpression(
  store: StatementRunner,
  sandboxId: number,
  input: ExpressionInput,
  options: { definition?: boolean; selfAudienceId?: number } = {},
): Promise<CheckedInput> {
  const parsed = parseExpression(input);
  const catalog = sandboxCatalog(await readSchemaFields(store, sandboxId)).catalog;
  const audiences = await resolveAudiences(store, sandboxId, parsed.ast);
  const dependencies = new Map<number, number[]>();
  if (options.selfAudienceId !== undefined) {
    const queue = [...audiences.values()].map((a) => a.id);
    while (queue.length > 0) {
      const id = queue.shift()!;
      if (dependencies.has(id)) continue;
      const next = (await store.all<{ audienceId: number }>(q.audienceDependencies, [sandboxId, id])).map(
        (r) => r.audienceId,
      );
      dependencies.set(id, next);
      queue.push(...next);
    }
  }
  return checkParsed(
    parsed,
    {
      catalog,
      selfAudienceId: options.selfAudienceId,
      resolveAudience: (ref) => audiences.get(ref),
      audienceDependencies: (id) => dependencies.get(id) ?? [],
    },
    options.definition,
  );
}

/**
 * Checks a parsed expression with a sandbox's catalogue and audiences, whichever database they
 * were read from; `definition` (the default) requires a boolean.
 */
export function checkParsed(
  { ast, source }: { ast: ExpressionNode; source: string },
  checkOptions: CheckOptions,
  definition = true,
): CheckedInput {
  const checked = definition ? checkDefinition(ast, source, checkOptions) : check(ast, source, checkOptions);
  return { checked, text: print(ast), json: toJson(ast) };
}

/**
 * SQLite's refusals of a statement too big to compile. The parser's limits keep expressions
 * small, but how deep the SQL of an expression nests depends on its shape (an arithmetic chain
 * of 400 terms nests about three levels per term, past SQLite's expression depth of 1000), so
 * only preparing the statement says for sure.
 */
const SQLITE_STATEMENT_LIMIT =
  /Expression tree is too large|too many (?:terms|arguments|columns|SQL variables|FROM clause terms)|parser stack overflow|at most \d+ tables in a join/i;

/**
 * A database's refusal of an expression's compiled statement as a PQL_TYPE_ERROR: SQLite's limits
 * (above), PostgreSQL's SQLSTATE class 54 (program limit exceeded, e.g. stack depth); undefined
 * for any other failure.
 */
export function tooLargeToRun(err: unknown, checked: CheckedExpression): PqlError | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  const database = SQLITE_STATEMENT_LIMIT.test(err.message)
    ? 'SQLite'
    : typeof code === 'string' && code.startsWith('54')
      ? 'PostgreSQL'
      : undefined;
  if (database === undefined) return undefined;
  return new PqlError(
    'PQL_TYPE_ERROR',
    `the expression is too large to run: ${database} refuses its compiled form (${err.message}); split it into smaller definitions combined with inSegment`,
    checked.source,
    { offset: 0, length: checked.source.length, line: 1, column: 1 },
  );
}

/** SQLSTATE query_canceled: on PostgreSQL, planning a definition took longer than its store allows. */
const QUERY_CANCELED = '57014';

/**
 * Proves that a definition can run before it is accepted: compiles it in both SQL forms for the
 * store's database, each wrapped as deep as the jobs, streaming and previews wrap them, and has
 * the database plan (not run) the statements. What validates, runs.
 */
export async function assertRunnable(store: Store, sandboxId: number, checked: CheckedExpression): Promise<void> {
  const now = Date.now();
  const bound = [{ sql: 'p.id % 64 != 0 OR p.id > 0', params: [] }];
  try {
    await store.plan({
      sqlite: () => {
        const query = compileToSql(checked, { now, sandboxId, where: bound });
        return { sql: `SELECT ?, id FROM (${query.sql})`, params: [] };
      },
      postgres: () => {
        const query = compileToSql(checked, { now, sandboxId, where: bound, dialect: 'postgres' });
        return { sql: `SELECT q.id FROM (${query.sql}) AS q`, params: query.params };
      },
    });
    await store.plan({
      sqlite: () => {
        const predicate = compilePredicate(checked, { now });
        return {
          sql: `SELECT p.id FROM main.profiles AS p WHERE p.id IN (SELECT value FROM json_each(?)) AND NOT (${predicate.sql})`,
          params: [],
        };
      },
      postgres: () => {
        const predicate = compilePredicate(checked, { now, dialect: 'postgres' });
        return { sql: `SELECT p.id FROM profiles AS p WHERE NOT (${predicate.sql})`, params: predicate.params };
      },
    });
  } catch (err) {
    if ((err as { code?: unknown }).code === QUERY_CANCELED) {
      throw new PqlError(
        'PQL_TYPE_ERROR',
        'the expression is too large to run: PostgreSQL could not plan its compiled form in time; split it into smaller definitions combined with inSegment',
        checked.source,
        { offset: 0, length: checked.source.length, line: 1, column: 1 },
      );
    }
    throw tooLargeToRun(err, checked) ?? err;
  }
}

/** Converts between the text and JSON forms without checking against a schema. */
export function convertExpression(input: ExpressionInput, to: PqlFormat): string {
  const { ast } = parseExpression(input);
  return to === 'PQL_JSON' ? JSON.stringify(toJson(ast)) : print(ast);
}

export interface PqlProblem {
  message: string;
  code: PqlErrorCode;
  line: number;
  column: number;
  offset: number;
  length: number;
  expected: string[];
}

export interface PqlValidation {
  valid: boolean;
  errors: PqlProblem[];
  /** The type of the expression (`boolean`, `number`, `array<object>`, …); only a boolean or an array can be a definition. */
  type: string | null;
  normalized: string | null;
  json: PqlJson | null;
  eligibility: Eligibility | null;
  referencedFields: string[];
  referencedAudiences: number[];
}

/** Checks an expression the way a segment builder asks while the user types: problems are data, not failures. */
export async function validatePql(conn: Store, sandboxId: number, input: ExpressionInput): Promise<PqlValidation> {
  try {
    // A value expression (a count, a sum, an if(…)) is valid too: its type says what it is.
    const { checked, text, json } = await checkExpression(conn, sandboxId, input, { definition: false });
    // A boolean is a definition-to-be: it must also compile to a statement SQLite accepts.
    if (checked.type.kind === 'boolean') await assertRunnable(conn, sandboxId, checked);
    return {
      valid: true,
      errors: [],
      type: typeToString(checked.type),
      normalized: text,
      json,
      eligibility: checked.eligibility,
      referencedFields: checked.referencedFields,
      referencedAudiences: checked.referencedAudiences,
    };
  } catch (e) {
    if (!(e instanceof PqlError)) throw e;
    const { line, column, offset, length } = e.loc;
    return {
      valid: false,
      errors: [{ message: e.message, code: e.code, line, column, offset, length, expected: e.expected }],
      type: null,
      normalized: null,
      json: null,
      eligibility: null,
      referencedFields: [],
      referencedAudiences: [],
    };
  }
}
