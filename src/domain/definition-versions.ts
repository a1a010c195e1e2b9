/**
 * The versions of a definition: every change of its expression or evaluation settings keeps
 * what it was, so a membership can be explained by the expression that decided it and a change
 * can be read as a diff. A version is numbered by the definition's `version` at the change
 * (renames also move that number, so version numbers here may skip).
 */
import { createTwoFilesPatch } from 'diff';
import { and, desc, eq, gt, lt, lte, type SQL } from 'drizzle-orm';
import type { Connection } from '../db/index.js';
import { apiKeys, definitionVersions } from '../db/schema.js';
import type { PqlFormat } from './expressions.js';
import { countRows, type Page, type PageArgs, pageQuery, toPage } from './paging.js';

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

type Row = typeof definitionVersions.$inferSelect;

function toVersion(row: Row): DefinitionVersion {
  return {
    definitionId: row.definitionId,
    version: row.version,
    expression: { format: row.expressionFormat as PqlFormat, value: row.expressionValue },
    expressionText: row.expressionText,
    evaluationInfo: { batch: row.evalBatch, streaming: row.evalStreaming, edge: row.evalEdge },
    changedAt: row.changedAt,
    changedBy: row.changedBy,
  };
}

/** The name recorded as `changedBy` for a request made with this key (null: no key, the server runs open). */
export async function actorName(conn: Connection, keyId: number | null): Promise<string> {
  if (keyId === null) return OPEN_ACTOR;
  const row = conn.db.select({ name: apiKeys.name }).from(apiKeys).where(eq(apiKeys.id, keyId)).get();
  return row?.name ?? `key ${keyId}`;
}

/** Keeps the definition's current expression and settings as a version (inside the writing transaction). */
export async function recordDefinitionVersion(
  conn: Connection,
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
  conn.db
    .insert(definitionVersions)
    .values({
      sandboxId: def.sandboxId,
      definitionId: def.id,
      version: def.version,
      expressionFormat: def.expressionFormat,
      expressionValue: def.expressionValue,
      expressionText: def.expressionText,
      evalBatch: def.evalBatch,
      evalStreaming: def.evalStreaming,
      evalEdge: def.evalEdge,
      changedAt: now,
      changedBy,
    })
    .run();
}

/**
 * The version in force at definition version `version` (the newest kept at or below it), or at
 * instant `at` (the newest changed at or before it); the oldest one when nothing is that old.
 */
export async function definitionVersionAt(
  conn: Connection,
  sandboxId: number,
  definitionId: number,
  when: { version: number } | { at: number },
): Promise<DefinitionVersion | undefined> {
  const base = and(eq(definitionVersions.sandboxId, sandboxId), eq(definitionVersions.definitionId, definitionId));
  const bound =
    'version' in when ? lte(definitionVersions.version, when.version) : lte(definitionVersions.changedAt, when.at);
  const row =
    conn.db.select().from(definitionVersions).where(and(base, bound)).orderBy(desc(definitionVersions.version)).get() ??
    conn.db.select().from(definitionVersions).where(base).orderBy(definitionVersions.version).get();
  return row === undefined ? undefined : toVersion(row);
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
  conn: Connection,
  sandboxId: number,
  definitionId: number,
  args: PageArgs,
): Promise<Page<VersionWithDiff> & { totalCount: () => Promise<number> }> {
  const query = pageQuery(args);
  const conditions: SQL[] = [
    eq(definitionVersions.sandboxId, sandboxId),
    eq(definitionVersions.definitionId, definitionId),
  ];
  const base = [...conditions];
  if (query.after) conditions.push(lt(definitionVersions.version, Number(query.after[0])));
  if (query.before) conditions.push(gt(definitionVersions.version, Number(query.before[0])));
  const rows = conn.db
    .select()
    .from(definitionVersions)
    .where(and(...conditions))
    .orderBy(query.direction === 'forward' ? desc(definitionVersions.version) : definitionVersions.version)
    .limit(query.fetch)
    .all();
  const page = toPage(rows, query, (r) => [r.version]);
  return {
    ...page,
    items: page.items.map((row) => {
      const version = toVersion(row);
      const previous = conn.db
        .select()
        .from(definitionVersions)
        .where(and(...base, lt(definitionVersions.version, row.version)))
        .orderBy(desc(definitionVersions.version))
        .get();
      return { ...version, diff: expressionDiff(previous === undefined ? null : toVersion(previous), version) };
    }),
    totalCount: () => countRows(conn, definitionVersions, and(...base)),
  };
}
