/**
 * Segment search (docs/api.md "Search"): ranked hits over the FTS5 index of drizzle/0011 on
 * SQLite, or the generated search_vector of search_documents on PostgreSQL (ts-match.ts; how the
 * answers differ: docs/api.md "On PostgreSQL"), always inside one sandbox. Hits whose name alone
 * satisfies the query come first, then bm25 or ts_rank (name weighted highest); ties by document
 * id, so a page order is stable.
 */
import { type Statement, statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { badInput, notFound } from '../errors.js';
import { allFolders, type Folder } from '../folders.js';
import { decodeGlobalId, encodeGlobalId } from '../ids.js';
import { decodeCursor, encodeCursor, MAX_PAGE_SIZE } from '../paging.js';
import type { SchemaField } from '../profile-schema.js';
import { toFtsMatch } from './fts-match.js';
import { FIELD_COLUMNS, parseSearchQuery, SEARCH_FIELDS, type SearchField } from './query.js';
import {
  anyLeafQuery,
  columnVector,
  positiveLeaves,
  SqlParams,
  type TsMatch,
  toTsMatch,
  tsPredicate,
} from './ts-match.js';

export const SEARCH_ENTITY_KINDS = ['AUDIENCE', 'DEFINITION', 'FIELD'] as const;
export type SearchEntityKind = (typeof SEARCH_ENTITY_KINDS)[number];

/** The namespace schema fields are found under; audiences and definitions carry their own. */
export const SCHEMA_NAMESPACE = 'schema';
export const SEGQL_NAMESPACE = 'segql';

export interface SearchHit {
  kind: SearchEntityKind;
  /** The audience or definition id, or `<class>:<path>` for a schema field. */
  entityKey: string;
  namespace: string;
  /** Lower is better: bm25 on SQLite, minus ts_rank on PostgreSQL (not comparable across the two). */
  score: number;
  /** 0-based position in the ranking. */
  rank: number;
  /** A fragment of the best-matching field, matched words wrapped in <mark>…</mark>. */
  snippet: string;
  matchedFields: SearchField[];
  /** The indexed text, to tell changed content from a mere re-index. */
  content: string;
}

// The widest page every connection allows (the cost model counts search pages like the others).
export const SEARCH_MAX_PAGE = MAX_PAGE_SIZE;
const MARK_OPEN = '\u0001';
const MARK_CLOSE = '\u0002';
// bm25 weights in column order: name, description, gid, external_id, labels, folder, namespace, expression, path, type.
const WEIGHTS = '10.0, 3.0, 5.0, 5.0, 3.0, 2.0, 1.0, 1.0, 5.0, 1.0';
// ts_rank's weights of D, C, B, A: the same columns' weights in PostgreSQL's four (src/db/pg/schema.ts).
const PG_WEIGHTS = "CAST('{0.1, 0.3, 0.5, 1.0}' AS real[])";
// What a hit's text is, to tell changed content from a re-index: the same on both databases.
const CONTENT = `coalesce(name, '') || '|' || coalesce(description, '') || '|' || coalesce(labels, '') || '|' ||
  coalesce(folder, '') || '|' || coalesce(expression, '') || '|' || coalesce(type, '')`;

/** A compiled query: FTS5's MATCH expression on SQLite, the resolved AST on PostgreSQL. */
export type CompiledSearch = { dialect: 'sqlite'; match: string } | { dialect: 'postgres'; match: TsMatch };

/** The query compiled for the store's database, or null when it can match nothing. BAD_USER_INPUT when unreadable. */
export async function compileSearch(conn: Store, sandboxId: number, query: string): Promise<CompiledSearch | null> {
  const ast = parseSearchQuery(query);
  if (conn.dialect === 'postgres') {
    const match = await toTsMatch(ast, { conn, sandboxId });
    return match && { dialect: 'postgres', match };
  }
  const match = await toFtsMatch(ast, { conn, sandboxId });
  return match === null ? null : { dialect: 'sqlite', match };
}

/** An FTS5 statement: SQLite's alone (the index is SQLite's), prepared once per connection. */
const fts = (key: string, sqlite: string): Statement => ({ sqlite, postgres: '', name: `search.fts.${key}` });

/** SQLite: the MATCH expression is a parameter, so these texts are fixed. */
const FTS = {
  ranked: fts(
    'ranked',
    `SELECT d.id AS documentId, d.kind, d.entity_key AS entityKey, d.namespace, bm25(search_index, ${WEIGHTS}) AS score,
       d.id IN (SELECT rowid FROM search_index WHERE search_index MATCH ?) AS nameHit
     FROM search_index JOIN search_documents d ON d.id = search_index.rowid
     WHERE search_index MATCH ? AND d.sandbox_id = ? AND (? IS NULL OR d.namespace = ?)
     ORDER BY nameHit DESC, score ASC, d.id ASC LIMIT ? OFFSET ?`,
  ),
  count: fts(
    'count',
    `SELECT count(*) AS n FROM search_index JOIN search_documents d ON d.id = search_index.rowid
     WHERE search_index MATCH ? AND d.sandbox_id = ? AND (? IS NULL OR d.namespace = ?)`,
  ),
  perNamespace: fts(
    'perNamespace',
    `SELECT d.namespace, count(*) AS n FROM search_index JOIN search_documents d ON d.id = search_index.rowid
     WHERE search_index MATCH ? AND d.sandbox_id = ? GROUP BY d.namespace`,
  ),
  details: fts(
    'details',
    `SELECT rowid AS documentId, snippet(search_index, -1, '<mark>', '</mark>', '…', 16) AS snippet,
       ${SEARCH_FIELDS.map((_f, i) => `highlight(search_index, ${i}, '${MARK_OPEN}', '${MARK_CLOSE}') AS h${i}`).join(', ')},
       ${CONTENT} AS content
     FROM search_index WHERE search_index MATCH ? AND rowid IN (SELECT value FROM json_each(?))`,
  ),
};

const q = statements('search', {
  namespaces: {
    sqlite: 'SELECT DISTINCT namespace FROM search_documents WHERE sandbox_id = ?',
    postgres: 'SELECT DISTINCT namespace FROM search_documents WHERE sandbox_id = $1',
  },
  audienceFolder: {
    sqlite: 'SELECT folder_id AS folderId FROM audiences WHERE sandbox_id = ? AND id = ?',
    postgres: 'SELECT folder_id AS "folderId" FROM audiences WHERE sandbox_id = $1 AND id = $2',
  },
  definitionFolder: {
    sqlite:
      'SELECT a.folder_id AS folderId FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id WHERE d.sandbox_id = ? AND d.id = ?',
    postgres:
      'SELECT a.folder_id AS "folderId" FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id WHERE d.sandbox_id = $1 AND d.id = $2',
  },
  schemaField: {
    sqlite: 'SELECT class, path, type, description FROM schema_fields WHERE sandbox_id = ? AND class = ? AND path = ?',
    postgres:
      'SELECT class, path, type, description FROM schema_fields WHERE sandbox_id = $1 AND class = $2 AND path = $3',
  },
});

/**
 * A statement built for one query's shape (PostgreSQL): its text depends on the query's
 * operators and fields only, every word a bound parameter. Unnamed, so the server plans it with
 * its parameters' values and no client keeps it.
 */
const built = (postgres: string): Statement => ({ sqlite: '', postgres, name: '' });

/** PostgreSQL: the documents of a sandbox (and a namespace, when one is given) the query matches. */
function pgWhere(match: TsMatch, p: SqlParams, sandboxId: number, namespace: string | null | undefined): string {
  const ns =
    namespace === undefined
      ? ''
      : ` AND (CAST(${p.add(namespace)} AS text) IS NULL OR d.namespace = ${p.add(namespace)})`;
  return `d.sandbox_id = ${p.add(sandboxId)}${ns} AND ${tsPredicate(match, p)}`;
}

interface RankedRow {
  documentId: number;
  kind: SearchEntityKind;
  entityKey: string;
  namespace: string;
  score: number;
}

async function rankedRows(
  conn: Store,
  compiled: CompiledSearch,
  sandboxId: number,
  namespace: string | null,
  limit: number,
  offset: number,
): Promise<RankedRow[]> {
  if (compiled.dialect === 'sqlite') {
    const { match } = compiled;
    return conn.all<RankedRow>(FTS.ranked, [
      `{name} : (${match})`,
      match,
      sandboxId,
      namespace,
      namespace,
      limit,
      offset,
    ]);
  }
  const p = new SqlParams();
  const where = pgWhere(compiled.match, p, sandboxId, namespace);
  // Ranked by the leaves a hit is found by; a NOT takes documents out but ranks nothing.
  const rankQuery = anyLeafQuery(positiveLeaves(compiled.match), p) ?? "CAST('' AS tsquery)";
  const text = `SELECT d.id AS "documentId", d.kind, d.entity_key AS "entityKey", d.namespace,
      -ts_rank(${PG_WEIGHTS}, d.search_vector, ${rankQuery}, 1) AS score,
      ${tsPredicate(compiled.match, p, 'name')} AS "nameHit"
    FROM search_documents d WHERE ${where}
    ORDER BY "nameHit" DESC, score ASC, d.id ASC LIMIT ${p.add(limit)} OFFSET ${p.add(offset)}`;
  return conn.all<RankedRow>(built(text), p.values);
}

async function countHits(
  conn: Store,
  compiled: CompiledSearch,
  sandboxId: number,
  namespace: string | null,
): Promise<number> {
  if (compiled.dialect === 'sqlite')
    return (await conn.get<{ n: number }>(FTS.count, [compiled.match, sandboxId, namespace, namespace]))!.n;
  const p = new SqlParams();
  const text = `SELECT count(*) AS n FROM search_documents d WHERE ${pgWhere(compiled.match, p, sandboxId, namespace)}`;
  return (await conn.get<{ n: number }>(built(text), p.values))!.n;
}

async function countPerNamespace(
  conn: Store,
  compiled: CompiledSearch,
  sandboxId: number,
): Promise<{ namespace: string; n: number }[]> {
  if (compiled.dialect === 'sqlite') return conn.all(FTS.perNamespace, [compiled.match, sandboxId]);
  const p = new SqlParams();
  const text = `SELECT d.namespace, count(*) AS n FROM search_documents d
    WHERE ${pgWhere(compiled.match, p, sandboxId, undefined)} GROUP BY d.namespace`;
  return conn.all(built(text), p.values);
}

interface HitDetails {
  snippet: string;
  matchedFields: SearchField[];
  content: string;
}

// ts_headline's fragment as FTS5's snippet() cuts it: one fragment of at most 16 words.
const HEADLINE = "'StartSel=<mark>, StopSel=</mark>, MaxWords=16, MinWords=4, ShortWord=0, MaxFragments=1'";

/** The snippet, matched fields and content of the page's documents. */
async function hitDetails(conn: Store, compiled: CompiledSearch, ids: number[]): Promise<Map<number, HitDetails>> {
  if (compiled.dialect === 'sqlite') {
    const rows = await conn.all<Record<string, unknown>>(FTS.details, [compiled.match, JSON.stringify(ids)]);
    return new Map(
      rows.map((d) => [
        d.documentId as number,
        {
          snippet: String(d.snippet ?? ''),
          matchedFields: SEARCH_FIELDS.filter((_f, j) => String(d[`h${j}`] ?? '').includes(MARK_OPEN)),
          content: String(d.content ?? ''),
        },
      ]),
    );
  }
  // A field is matched when a leaf that may match in it (unscoped, or scoped to it) does; the
  // snippet is of the first matched field in column order, its words cut as the index cuts them.
  const p = new SqlParams();
  const leaves = positiveLeaves(compiled.match);
  const perField = SEARCH_FIELDS.map((f) => ({ f, query: anyLeafQuery(leaves, p, f) }));
  const matched = perField.map(({ f, query }) => (query ? `coalesce(${columnVector(f)} @@ ${query}, false)` : 'false'));
  const snippet = perField
    .map(({ f, query }, j) =>
      query
        ? `WHEN ${matched[j]} THEN ts_headline('segql_search', segql_search_words(d.${FIELD_COLUMNS[f]}), ${query}, ${HEADLINE})`
        : '',
    )
    .join(' ');
  const source = perField
    .map(({ f, query }, j) => (query ? `WHEN ${matched[j]} THEN d.${FIELD_COLUMNS[f]}` : ''))
    .join(' ');
  const text = `SELECT d.id AS "documentId", CASE ${snippet} ELSE '' END AS snippet, CASE ${source} END AS source,
      ${matched.map((m, j) => `${m} AS h${j}`).join(', ')}, ${CONTENT} AS content
    FROM search_documents d WHERE d.id IN (SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST(${p.add(JSON.stringify(ids))} AS jsonb)))`;
  const rows = await conn.all<Record<string, unknown>>(built(text), p.values);
  return new Map(
    rows.map((d) => [
      d.documentId as number,
      {
        snippet: restoreSnippet(String(d.snippet ?? ''), String(d.source ?? '')),
        matchedFields: SEARCH_FIELDS.filter((_f, j) => d[`h${j}`] === true),
        content: String(d.content ?? ''),
      },
    ]),
  );
}

/**
 * ts_headline's fragment shown in the column's own text, as FTS5's snippet shows it. The
 * headline is of the words PostgreSQL searched (punctuation made spaces), each matched word
 * marked on its own; here the same run of words is found in the column's text and cut from it
 * with its punctuation, marks around each run of matched words (a phrase is one mark, as in
 * FTS5), and `…` where the fragment stops short of the text's start or end. When the words
 * cannot be lined up (a character the two databases count differently), the headline stays.
 */
export function restoreSnippet(headline: string, source: string): string {
  const tokens = [...headline.matchAll(/<mark>(.*?)<\/mark>|(\S+)/gu)].map((m) => ({
    word: m[1] ?? m[2]!,
    marked: m[1] !== undefined,
  }));
  const text = source.normalize('NFKC');
  const words = [...text.matchAll(/[\p{L}\p{N}]+/gu)].map((m) => ({
    word: m[0],
    start: m.index,
    end: m.index + m[0].length,
  }));
  if (tokens.length === 0) return headline;
  let at = -1;
  for (let i = 0; i + tokens.length <= words.length && at < 0; i++)
    if (tokens.every((t, k) => words[i + k]!.word === t.word)) at = i;
  if (at < 0) return headline;
  const last = at + tokens.length - 1;
  let out = at === 0 ? text.slice(0, words[0]!.start) : '…';
  tokens.forEach((t, k) => {
    const w = words[at + k]!;
    if (k > 0) out += text.slice(words[at + k - 1]!.end, w.start);
    const opens = t.marked && !tokens[k - 1]?.marked;
    const closes = t.marked && !tokens[k + 1]?.marked;
    out += `${opens ? '<mark>' : ''}${w.word}${closes ? '</mark>' : ''}`;
  });
  return out + (last === words.length - 1 ? text.slice(words[last]!.end) : '…');
}

export interface SearchPage {
  hits: SearchHit[];
  cursors: string[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  totalCount: () => Promise<number>;
}

/** Ranked hits of a query in one sandbox (one namespace, or all when namespace is null). */
export async function searchEntities(
  conn: Store,
  sandboxId: number,
  namespace: string | null,
  query: string,
  args: { first?: number | null; after?: string | null } = {},
): Promise<SearchPage> {
  const first = args.first ?? 20;
  if (!Number.isInteger(first) || first < 0 || first > SEARCH_MAX_PAGE)
    throw badInput(`first must be from 0 to ${SEARCH_MAX_PAGE}`, 'first');
  let offset = 0;
  if (args.after != null) {
    const key = decodeCursor(args.after, 'after');
    if (key.length !== 1 || typeof key[0] !== 'number' || !Number.isInteger(key[0]) || key[0] < 0)
      throw badInput('The after cursor is not one this search gave', 'after');
    offset = key[0] + 1;
  }
  const compiled = await compileSearch(conn, sandboxId, query);
  if (compiled === null)
    return { hits: [], cursors: [], hasNextPage: false, hasPreviousPage: offset > 0, totalCount: async () => 0 };
  const rows = await rankedRows(conn, compiled, sandboxId, namespace, first + 1, offset);
  const page = rows.slice(0, first);
  const details = await hitDetails(
    conn,
    compiled,
    page.map((r) => r.documentId),
  );
  const hits = page.map((r, i): SearchHit => {
    const d = details.get(r.documentId);
    return {
      kind: r.kind,
      entityKey: r.entityKey,
      namespace: r.namespace,
      score: r.score,
      rank: offset + i,
      snippet: d?.snippet ?? '',
      matchedFields: d?.matchedFields ?? [],
      content: d?.content ?? '',
    };
  });
  return {
    hits,
    cursors: hits.map((h) => encodeCursor([h.rank])),
    hasNextPage: rows.length > first,
    hasPreviousPage: offset > 0,
    totalCount: () => countHits(conn, compiled, sandboxId, namespace),
  };
}

export interface NamespaceCount {
  namespace: string;
  count: number;
}

/** Hits per namespace: segql first, then each external namespace by name, then schema. */
export async function searchNamespaces(conn: Store, sandboxId: number, query: string): Promise<NamespaceCount[]> {
  const compiled = await compileSearch(conn, sandboxId, query);
  const counts = new Map<string, number>([[SEGQL_NAMESPACE, 0]]);
  for (const r of await conn.all<{ namespace: string }>(q.namespaces, [sandboxId])) counts.set(r.namespace, 0);
  counts.set(SCHEMA_NAMESPACE, 0);
  if (compiled !== null)
    for (const r of await countPerNamespace(conn, compiled, sandboxId)) counts.set(r.namespace, r.n);
  const order = (ns: string) => (ns === SEGQL_NAMESPACE ? 0 : ns === SCHEMA_NAMESPACE ? 2 : 1);
  return [...counts]
    .map(([namespace, count]) => ({ namespace, count }))
    .sort((a, b) => order(a.namespace) - order(b.namespace) || a.namespace.localeCompare(b.namespace));
}

/** The global id clients see for a hit's entity (schema fields have none). */
export function hitGlobalId(hit: Pick<SearchHit, 'kind' | 'entityKey'>): string | null {
  if (hit.kind === 'AUDIENCE') return encodeGlobalId('Audience', hit.entityKey);
  if (hit.kind === 'DEFINITION') return encodeGlobalId('SegmentDefinition', hit.entityKey);
  return null;
}

/** The folders from the root down to the one an audience (or a definition's audience) is filed in. */
export async function taxonomy(conn: Store, sandboxId: number, entityId: string): Promise<Folder[]> {
  const decoded = decodeGlobalId(entityId);
  const id = Number(decoded?.id);
  const statement =
    decoded?.type === 'Audience' ? q.audienceFolder : decoded?.type === 'SegmentDefinition' ? q.definitionFolder : null;
  const row =
    statement && Number.isSafeInteger(id)
      ? await conn.get<{ folderId: number | null }>(statement, [sandboxId, id])
      : undefined;
  if (!row) throw notFound(`No audience or segment definition with id "${entityId}" in this sandbox`, entityId);
  const folders = await allFolders(conn, sandboxId);
  const path: Folder[] = [];
  const seen = new Set<number>();
  let current = row.folderId == null ? undefined : folders.get(row.folderId);
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    path.unshift(current);
    current = current.parentId == null ? undefined : folders.get(current.parentId);
  }
  return path;
}

/** The schema field a FIELD hit names (`<class>:<path>`), or null when it is gone. */
export async function schemaFieldOfHit(conn: Store, sandboxId: number, entityKey: string): Promise<SchemaField | null> {
  const colon = entityKey.indexOf(':');
  const cls = entityKey.slice(0, colon);
  const path = entityKey.slice(colon + 1);
  return (await conn.get<SchemaField>(q.schemaField, [sandboxId, cls, path])) ?? null;
}
