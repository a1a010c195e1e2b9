/**
 * Ad-hoc evaluation on PostgreSQL (docs/scale-out.md "The storage boundary", step 4): the three
 * queries of the query pool — a page of matching ids, their count, one profile evaluated — read
 * from PostgreSQL in one read-only REPEATABLE READ transaction on one client, so every read of a
 * query sees one snapshot. The heavy part runs in the database, bounded by `statement_timeout`
 * set from what is left of the budget before each statement that may take long; a statement
 * stopped by it, or JS work past the deadline, is QueryTimedOut. What is not a read is the SQLite
 * side's own code (evaluation.ts): the paging of ids, the definitions chosen, the evaluation of
 * the loaded document.
 */
import type pg from 'pg';
import { type ConnectionCache, cacheKey } from '../../db/connection-cache.js';
import { pgStatementRunner } from '../../db/pg/index.js';
import { type StatementRunner, statements } from '../../db/statement.js';
import { type CheckedExpression, compileToSql, type FieldCatalog } from '../../pql/index.js';
import { notFound } from '../errors.js';
import {
  chosenDefinitions,
  type DefinitionExpression,
  type EdgeDefinition,
  type EdgeEvaluation,
  type EdgeRow,
  edgeDefinitionsRead,
  evaluateDocument,
  matchingPage,
  matchingPagePlan,
  runsDefinitions,
} from '../evaluation.js';
import { type ExpressionInput, tooLargeToRun } from '../expressions.js';
import type { Page, PageArgs } from '../paging.js';
import { checkDefinitionPg } from '../pg-expressions.js';
import { readProfileDocument } from '../profile-documents.js';
import { assertIdentity, type IdentityInput } from '../profile-ingest.js';
import { readSchemaFields, sandboxCatalog } from '../profile-schema.js';
import { profileIdByIdentity } from '../profiles.js';
import { deadlineCheck, QueryTimedOut } from './query-deadline.js';

/** One query's reads: a client inside its transaction, the budget, and what the reader keeps. */
export interface PgReadSession {
  client: pg.ClientBase;
  /** The catalogue's statements, on `client`. */
  runner: StatementRunner;
  /** What is kept across queries (catalogues, checked definitions): the reader's own. */
  cache: ConnectionCache;
  /** Before a statement that may take long: bounds it by what is left of the budget (or throws past it). */
  bound(): Promise<void>;
  /** Throws QueryTimedOut once the deadline has passed (between pieces of JS work). */
  checkpoint(): void;
}

/** SQLSTATE query_canceled: what `statement_timeout` ends a statement with. */
const QUERY_CANCELED = '57014';

/**
 * Runs `body` in a read-only REPEATABLE READ transaction on a client of `pool`, within the
 * budget that ends at `deadline` (epoch ms): a statement the timeout stops, or a deadline check
 * that fails, ends it with QueryTimedOut; the transaction is always rolled back or committed
 * before the client goes back to the pool.
 */
export async function withPgReadSession<T>(
  pool: pg.Pool,
  cache: ConnectionCache,
  deadline: number,
  body: (session: PgReadSession) => Promise<T>,
): Promise<T> {
  const checkpoint = deadlineCheck(deadline);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const session: PgReadSession = {
      client,
      runner: pgStatementRunner(client),
      cache,
      checkpoint,
      async bound() {
        const left = Math.ceil(deadline - Date.now());
        if (left <= 0) throw new QueryTimedOut();
        // A bound parameter, not text: set_config(…, true) is SET LOCAL.
        await client.query("SELECT set_config('statement_timeout', $1, true)", [String(left)]);
      },
    };
    await session.bound();
    const result = await body(session);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    if ((err as { code?: unknown }).code === QUERY_CANCELED) throw new QueryTimedOut();
    throw err;
  } finally {
    client.release(broken);
  }
}

/** A sandbox's catalogue as last read, and the definitions checked against it. */
interface CatalogEntry {
  /** The stored fields as read: a change to them is a new catalogue. */
  fingerprint: string;
  catalog: FieldCatalog;
  checked: Map<string, CheckedExpression>;
}

const PG_CATALOGS = cacheKey<Map<number, CatalogEntry>>('pg query catalogues');

/**
 * The sandbox's catalogue in this snapshot: read every query (one short statement), rebuilt and
 * its checked definitions dropped only when the stored fields changed.
 */
async function catalogEntry(session: PgReadSession, sandboxId: number): Promise<CatalogEntry> {
  const fields = await readSchemaFields(session.runner, sandboxId);
  const fingerprint = JSON.stringify(fields);
  const entries = session.cache.get(PG_CATALOGS, () => new Map());
  let entry = entries.get(sandboxId);
  if (!entry || entry.fingerprint !== fingerprint) {
    entry = { fingerprint, catalog: sandboxCatalog(fields).catalog, checked: new Map() };
    entries.set(sandboxId, entry);
  }
  return entry;
}

async function runCompiled<Row extends pg.QueryResultRow>(
  session: PgReadSession,
  checked: CheckedExpression,
  text: string,
  params: unknown[],
): Promise<Row[]> {
  await session.bound();
  try {
    return (await session.client.query<Row>(text, params)).rows;
  } catch (err) {
    throw tooLargeToRun(err, checked) ?? err;
  }
}

async function checkedDefinitionInput(
  session: PgReadSession,
  sandboxId: number,
  input: ExpressionInput,
  definition: boolean,
): Promise<CheckedExpression> {
  const { catalog } = await catalogEntry(session, sandboxId);
  return (await checkDefinitionPg(session.client, sandboxId, catalog, input, definition)).checked;
}

/** matchingProfileIds (evaluation.ts) on PostgreSQL: the same page, cursors and `at`. */
export async function matchingProfileIdsPg(
  session: PgReadSession,
  sandboxId: number,
  input: ExpressionInput,
  at: number,
  args: PageArgs,
): Promise<Page<number>> {
  const checked = await checkedDefinitionInput(session, sandboxId, input, true);
  const plan = matchingPagePlan(args);
  const page = compileToSql(checked, { dialect: 'postgres', now: at, sandboxId, where: plan.bounds });
  const n = page.params.length;
  const rows = await runCompiled<{ id: number }>(
    session,
    checked,
    `SELECT q.id AS id FROM (${page.sql}) AS q ORDER BY q.id ${plan.order} LIMIT $${n + 1}`,
    [...page.params, plan.fetch],
  );
  return matchingPage(
    rows.map((r) => r.id),
    plan,
  );
}

/** countMatching (evaluation.ts) on PostgreSQL. */
export async function countMatchingPg(
  session: PgReadSession,
  sandboxId: number,
  input: ExpressionInput,
  at: number,
): Promise<number> {
  const checked = await checkedDefinitionInput(session, sandboxId, input, true);
  const all = compileToSql(checked, { dialect: 'postgres', now: at, sandboxId });
  const rows = await runCompiled<{ n: number }>(
    session,
    checked,
    `SELECT count(*) AS n FROM (${all.sql}) AS q`,
    all.params,
  );
  return rows[0]!.n;
}

/** A definition's checked expression, kept per catalogue by id, version and text (as checkedDefinition on SQLite). */
async function checkedDefinitionPg(
  session: PgReadSession,
  entry: CatalogEntry,
  def: DefinitionExpression,
): Promise<CheckedExpression> {
  const key = `${def.sandboxId}:${def.id}:${def.version}:${def.expressionText}`;
  let checked = entry.checked.get(key);
  if (!checked) {
    checked = (
      await checkDefinitionPg(session.client, def.sandboxId, entry.catalog, {
        format: 'PQL_TEXT',
        value: def.expressionText,
      })
    ).checked;
    entry.checked.set(key, checked);
  }
  return checked;
}

/** evaluateProfile (evaluation.ts) on PostgreSQL: the profile and its events read here, evaluated by the same code. */
export async function evaluateProfilePg(
  session: PgReadSession,
  sandboxId: number,
  identity: IdentityInput,
  options: { expression?: ExpressionInput | null; audienceIds?: readonly number[] | null; at: number },
): Promise<EdgeEvaluation> {
  const started = performance.now();
  assertIdentity(identity);
  const profileId = await profileIdByIdentity(session.runner, sandboxId, identity);
  if (profileId === undefined) throw notFound(`No profile has identity ${identity.namespace}:${identity.id}`);
  const entry = await catalogEntry(session, sandboxId);
  const expression = options.expression
    ? (await checkDefinitionPg(session.client, sandboxId, entry.catalog, options.expression, false)).checked
    : undefined;
  await session.bound();
  const doc = await readProfileDocument(session.runner, sandboxId, profileId);
  if (!doc) throw notFound(`No profile has identity ${identity.namespace}:${identity.id}`);
  let definitions: EdgeDefinition[] = [];
  const checked = new Map<EdgeDefinition, CheckedExpression>();
  if (runsDefinitions(options)) {
    const { statement, params } = edgeDefinitionsRead(sandboxId, options.audienceIds);
    definitions = chosenDefinitions(await session.runner.all<EdgeRow>(statement, params), options.audienceIds);
    for (const def of definitions) checked.set(def, await checkedDefinitionPg(session, entry, def));
  }
  const result = evaluateDocument(doc, {
    expression,
    definitions,
    checkedOf: (def) => checked.get(def)!,
    at: options.at,
    checkpoint: session.checkpoint,
  });
  return { ...result, durationMs: performance.now() - started };
}

/** What a new query worker warms itself with: any stored identity. */
export const WARM_UP = statements('query-warm-up', {
  anyIdentity: {
    sqlite: 'SELECT sandbox_id AS "sandboxId", namespace, value AS id FROM identities LIMIT 1',
    postgres: 'SELECT sandbox_id AS "sandboxId", namespace, value AS id FROM identities LIMIT 1',
  },
});
