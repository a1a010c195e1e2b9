/**
 * The versions of a definition: every change of its expression or evaluation settings keeps
 * what it was, so a membership can be explained by the expression that decided it and a change
 * can be read as a diff. A version is numbered by the definition's `version` at the change
 * (renames also move that number, so version numbers here may skip).
 */
import { createTwoFilesPatch } from 'diff';
import { statements } from '../db/statement.js';
import type { Store } from '../db/store.js';
import type { PqlFormat } from './expressions.js';
import { integerBounds, type Page, type PageArgs, pageQuery, toPage } from './paging.js';

/** Who changed a definition when the server runs without API keys. */
export const OPEN_ACTOR = 'open';

export interface DefinitionVersion {
  definitionId: number;
  version: number;
  expression: { format: PqlFormat; value: string };
  /** Canonical text (what the engines compiled while this version was current). */
  expressionText: string;
  evaluationInfo: { batch: boolean; streaming: boolean; edge: boolean };
  changedAt: number;
  changedBy: string;
}

/** A row as both texts return it: the settings as 0 or 1. */
interface Row {
  sandboxId: number;
  definitionId: number;
  version: number;
  expressionFormat: string;
  expressionValue: string;
  expressionText: string;
  evalBatch: number;
  evalStreaming: number;
  evalEdge: number;
  changedAt: number;
  changedBy: string;
}

const SQLITE_COLUMNS = `sandbox_id AS "sandboxId", definition_id AS "definitionId", version,
  expression_format AS "expressionFormat", expression_value AS "expressionValue",
  expression_text AS "expressionText", eval_batch AS "evalBatch", eval_streaming AS "evalStreaming",
  eval_edge AS "evalEdge", changed_at AS "changedAt", changed_by AS "changedBy"`;
const PG_COLUMNS = `sandbox_id AS "sandboxId", definition_id AS "definitionId", version,
  expression_format AS "expressionFormat", expression_value AS "expressionValue",
  expression_text AS "expressionText", CAST(eval_batch AS integer) AS "evalBatch",
  CAST(eval_streaming AS integer) AS "evalStreaming", CAST(eval_edge AS integer) AS "evalEdge",
  changed_at AS "changedAt", changed_by AS "changedBy"`;

const q = statements('definition-versions', {
  actorName: {
    sqlite: 'SELECT name FROM api_keys WHERE id = ?',
    postgres: 'SELECT name FROM api_keys WHERE id = $1',
  },
  /** Parameters: sandbox, definition, version, format, value, text, batch, streaming, edge (0 or 1), at, by. */
  insert: {
    sqlite: `INSERT INTO definition_versions (sandbox_id, definition_id, version, expression_format, expression_value,
      expression_text, eval_batch, eval_streaming, eval_edge, changed_at, changed_by)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    postgres: `INSERT INTO definition_versions (sandbox_id, definition_id, version, expression_format, expression_value,
      expression_text, eval_batch, eval_streaming, eval_edge, changed_at, changed_by)
      VALUES ($1, $2, $3, $4, $5, $6, CAST(CAST($7 AS integer) AS boolean), CAST(CAST($8 AS integer) AS boolean),
        CAST(CAST($9 AS integer) AS boolean), $10, $11)`,
  },
  /** The newest version at or below a version number. */
  atVersion: {
    sqlite: `SELECT ${SQLITE_COLUMNS} FROM definition_versions
      WHERE sandbox_id = ? AND definition_id = ? AND version <= ? ORDER BY version DESC LIMIT 1`,
    postgres: `SELECT ${PG_COLUMNS} FROM definition_versions
      WHERE sandbox_id = $1 AND definition_id = $2 AND version <= $3 ORDER BY version DESC LIMIT 1`,
  },
  /** The newest version changed at or before an instant. */
  atInstant: {
    sqlite: `SELECT ${SQLITE_COLUMNS} FROM definition_versions
      WHERE sandbox_id = ? AND definition_id = ? AND changed_at <= ? ORDER BY version DESC LIMIT 1`,
    postgres: `SELECT ${PG_COLUMNS} FROM definition_versions
      WHERE sandbox_id = $1 AND definition_id = $2 AND changed_at <= $3 ORDER BY version DESC LIMIT 1`,
  },
  oldest: {
    sqlite: `SELECT ${SQLITE_COLUMNS} FROM definition_versions
      WHERE sandbox_id = ? AND definition_id = ? ORDER BY version LIMIT 1`,
    postgres: `SELECT ${PG_COLUMNS} FROM definition_versions
      WHERE sandbox_id = $1 AND definition_id = $2 ORDER BY version LIMIT 1`,
  },
  /** The version just before one. */
  previous: {
    sqlite: `SELECT ${SQLITE_COLUMNS} FROM definition_versions
      WHERE sandbox_id = ? AND definition_id = ? AND version < ? ORDER BY version DESC LIMIT 1`,
    postgres: `SELECT ${PG_COLUMNS} FROM definition_versions
      WHERE sandbox_id = $1 AND definition_id = $2 AND version < $3 ORDER BY version DESC LIMIT 1`,
  },
  /**
   * Newest first (`first`/`after`). Parameters: sandbox, definition, below version, above version,
   * limit; a missing cursor is a bound every version passes.
   */
  pageForward: {
    sqlite: `SELECT ${SQLITE_COLUMNS} FROM definition_versions
      WHERE sandbox_id = ? AND definition_id = ? AND version < ? AND version > ? ORDER BY version DESC LIMIT ?`,
    postgres: `SELECT ${PG_COLUMNS} FROM definition_versions
      WHERE sandbox_id = $1 AND definition_id = $2 AND version < $3 AND version > $4 ORDER BY version DESC LIMIT $5`,
  },
  /** Oldest first (`last`/`before`); the same parameters. */
  pageBackward: {
    sqlite: `SELECT ${SQLITE_COLUMNS} FROM definition_versions
      WHERE sandbox_id = ? AND definition_id = ? AND version < ? AND version > ? ORDER BY version LIMIT ?`,
    postgres: `SELECT ${PG_COLUMNS} FROM definition_versions
      WHERE sandbox_id = $1 AND definition_id = $2 AND version < $3 AND version > $4 ORDER BY version LIMIT $5`,
  },
  count: {
    sqlite: 'SELECT count(*) AS n FROM definition_versions WHERE sandbox_id = ? AND definition_id = ?',
    postgres: 'SELECT count(*) AS n FROM definition_versions WHERE sandbox_id = $1 AND definition_id = $2',
  },
});

function toVersion(row: Row): DefinitionVersion {
  return {
    definitionId: row.definitionId,
    version: row.version,
    expression: { format: row.expressionFormat as PqlFormat, value: row.expressionValue },
    expressionText: row.expressionText,
    evaluationInfo: { batch: row.evalBatch === 1, streaming: row.evalStreaming === 1, edge: row.evalEdge === 1 },
    changedAt: row.changedAt,
    changedBy: row.changedBy,
  };
}

/** The name recorded as `changedBy` for a request made with this key (null: no key, the server runs open). */
export async function actorName(conn: Store, keyId: number | null): Promise<string> {
  if (keyId === null) return OPEN_ACTOR;
  const row = await conn.get<{ name: string }>(q.actorName, [keyId]);
  return row?.name ?? `key ${keyId}`;
}

/** Keeps the definition's current expression and settings as a version (inside the writing transaction). */
export async function recordDefinitionVersion(
  conn: Store,
  def: {
    id: number;
    sandboxId: number;
    version: number;
    expressionFormat: string;
    expressionValue: string;
    expressionText: string;
    evalBatch: boolean;
    evalStreaming: boolean;
    evalEdge: boolean;
  },
  changedBy: string,
  now: number,
): Promise<void> {
  await conn.run(q.insert, [
    def.sandboxId,
    def.id,
    def.version,
    def.expressionFormat,
    def.expressionValue,
    def.expressionText,
    def.evalBatch ? 1 : 0,
    def.evalStreaming ? 1 : 0,
    def.evalEdge ? 1 : 0,
    now,
    changedBy,
  ]);
}

/**
 * The version in force at definition version `version` (the newest kept at or below it), or at
 * instant `at` (the newest changed at or before it); the oldest one when nothing is that old.
 */
export async function definitionVersionAt(
  conn: Store,
  sandboxId: number,
  definitionId: number,
  when: { version: number } | { at: number },
): Promise<DefinitionVersion | undefined> {
  const row =
    'version' in when
      ? await conn.get<Row>(q.atVersion, [sandboxId, definitionId, when.version])
      : await conn.get<Row>(q.atInstant, [sandboxId, definitionId, when.at]);
  const found = row ?? (await conn.get<Row>(q.oldest, [sandboxId, definitionId]));
  return found === undefined ? undefined : toVersion(found);
}

/** The normalised PQL of `from` against `to`, as a unified diff (`from` null: all of `to` is new). */
export function expressionDiff(from: DefinitionVersion | null, to: DefinitionVersion): string {
  const before = from === null ? '' : `${from.expressionText}\n`;
  return createTwoFilesPatch(
    from === null ? '/dev/null' : `version ${from.version}`,
    `version ${to.version}`,
    before,
    `${to.expressionText}\n`,
    undefined,
    undefined,
    { context: 3 },
  );
}

export type VersionWithDiff = DefinitionVersion & { diff: string };

/** A definition's versions, newest first (the current one first), each with its diff against the one before. */
export async function listDefinitionVersions(
  conn: Store,
  sandboxId: number,
  definitionId: number,
  args: PageArgs,
): Promise<Page<VersionWithDiff> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const { below, above } = integerBounds(query);
  const rows = await conn.all<Row>(query.direction === 'forward' ? q.pageForward : q.pageBackward, [
    sandboxId,
    definitionId,
    below,
    above,
    query.fetch,
  ]);
  const page = toPage(rows, query, (r) => [r.version]);
  // One read per item for the version before it: a page is at most 500 versions, read in turn.
  const items: VersionWithDiff[] = [];
  for (const row of page.items) {
    const version = toVersion(row);
    const previous = await conn.get<Row>(q.previous, [sandboxId, definitionId, row.version]);
    items.push({ ...version, diff: expressionDiff(previous === undefined ? null : toVersion(previous), version) });
  }
  return {
    ...page,
    items,
    totalCount: async () => (await conn.get<{ n: number }>(q.count, [sandboxId, definitionId]))!.n,
  };
}
