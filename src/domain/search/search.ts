/**
 * Segment search (docs/api.md "Search"): ranked hits over the FTS5 index of drizzle/0011,
 * always inside one sandbox. Hits whose name alone satisfies the query come first, then bm25
 * (name weighted highest); ties by document id, so a page order is stable.
 */
import { cacheKey } from '../../db/connection-cache.js';
import type { Connection } from '../../db/index.js';
import { badInput, notFound } from '../errors.js';
import { allFolders, type Folder } from '../folders.js';
import { decodeGlobalId, encodeGlobalId } from '../ids.js';
import { decodeCursor, encodeCursor, MAX_PAGE_SIZE } from '../paging.js';
import { type SchemaField, schemaFieldsOf } from '../profile-schema.js';
import { toFtsMatch } from './fts-match.js';
import { parseSearchQuery, SEARCH_FIELDS, type SearchField } from './query.js';

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
  /** bm25: lower is better. */
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

/** The MATCH expression of a query, or null when it can match nothing. BAD_USER_INPUT when unreadable. */
export async function compileSearch(conn: Connection, sandboxId: number, query: string): Promise<string | null> {
  return toFtsMatch(parseSearchQuery(query), { conn, sandboxId });
}

const STATEMENTS = cacheKey<ReturnType<typeof prepare>>('search statements');

function prepare(conn: Connection) {
  const s = conn.sqlite;
  return {
    ranked: s.prepare(
      `SELECT d.id AS documentId, d.kind, d.entity_key AS entityKey, d.namespace, bm25(search_index, ${WEIGHTS}) AS score,
         d.id IN (SELECT rowid FROM search_index WHERE search_index MATCH @nameMatch) AS nameHit
       FROM search_index JOIN search_documents d ON d.id = search_index.rowid
       WHERE search_index MATCH @match AND d.sandbox_id = @sandboxId AND (@namespace IS NULL OR d.namespace = @namespace)
       ORDER BY nameHit DESC, score ASC, d.id ASC LIMIT @limit OFFSET @offset`,
    ),
    count: s.prepare(
      `SELECT count(*) AS n FROM search_index JOIN search_documents d ON d.id = search_index.rowid
       WHERE search_index MATCH @match AND d.sandbox_id = @sandboxId AND (@namespace IS NULL OR d.namespace = @namespace)`,
    ),
    perNamespace: s.prepare(
      `SELECT d.namespace, count(*) AS n FROM search_index JOIN search_documents d ON d.id = search_index.rowid
       WHERE search_index MATCH @match AND d.sandbox_id = @sandboxId GROUP BY d.namespace`,
    ),
    namespaces: s.prepare('SELECT DISTINCT namespace FROM search_documents WHERE sandbox_id = ?'),
    details: s.prepare(
      `SELECT rowid AS documentId, snippet(search_index, -1, '<mark>', '</mark>', '…', 16) AS snippet,
         ${SEARCH_FIELDS.map((_f, i) => `highlight(search_index, ${i}, '${MARK_OPEN}', '${MARK_CLOSE}') AS h${i}`).join(', ')},
         coalesce(name, '') || '|' || coalesce(description, '') || '|' || coalesce(labels, '') || '|' ||
           coalesce(folder, '') || '|' || coalesce(expression, '') || '|' || coalesce(type, '') AS content
       FROM search_index WHERE search_index MATCH @match AND rowid IN (SELECT value FROM json_each(@ids))`,
    ),
  };
}

const statements = (conn: Connection) => conn.cache.get(STATEMENTS, () => prepare(conn));

export interface SearchPage {
  hits: SearchHit[];
  cursors: string[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  totalCount: () => Promise<number>;
}

/** Ranked hits of a query in one sandbox (one namespace, or all when namespace is null). */
export async function searchEntities(
  conn: Connection,
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
  const match = await compileSearch(conn, sandboxId, query);
  if (match === null)
    return { hits: [], cursors: [], hasNextPage: false, hasPreviousPage: offset > 0, totalCount: async () => 0 };
  const st = statements(conn);
  const params = { match, nameMatch: `{name} : (${match})`, sandboxId, namespace };
  const rows = st.ranked.all({ ...params, limit: first + 1, offset }) as {
    documentId: number;
    kind: SearchEntityKind;
    entityKey: string;
    namespace: string;
    score: number;
  }[];
  const page = rows.slice(0, first);
  const details = new Map(
    (st.details.all({ match, ids: JSON.stringify(page.map((r) => r.documentId)) }) as Record<string, unknown>[]).map(
      (d) => [d.documentId as number, d],
    ),
  );
  const hits = page.map((r, i): SearchHit => {
    const d = details.get(r.documentId) ?? {};
    return {
      kind: r.kind,
      entityKey: r.entityKey,
      namespace: r.namespace,
      score: r.score,
      rank: offset + i,
      snippet: String(d.snippet ?? ''),
      matchedFields: SEARCH_FIELDS.filter((_f, j) => String(d[`h${j}`] ?? '').includes(MARK_OPEN)),
      content: String(d.content ?? ''),
    };
  });
  return {
    hits,
    cursors: hits.map((h) => encodeCursor([h.rank])),
    hasNextPage: rows.length > first,
    hasPreviousPage: offset > 0,
    totalCount: async () => (st.count.get(params) as { n: number }).n,
  };
}

export interface NamespaceCount {
  namespace: string;
  count: number;
}

/** Hits per namespace: segql first, then each external namespace by name, then schema. */
export async function searchNamespaces(conn: Connection, sandboxId: number, query: string): Promise<NamespaceCount[]> {
  const match = await compileSearch(conn, sandboxId, query);
  const st = statements(conn);
  const counts = new Map<string, number>([[SEGQL_NAMESPACE, 0]]);
  for (const r of st.namespaces.all(sandboxId) as { namespace: string }[]) counts.set(r.namespace, 0);
  counts.set(SCHEMA_NAMESPACE, 0);
  if (match !== null)
    for (const r of st.perNamespace.all({ match, sandboxId }) as { namespace: string; n: number }[])
      counts.set(r.namespace, r.n);
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
export async function taxonomy(conn: Connection, sandboxId: number, entityId: string): Promise<Folder[]> {
  const decoded = decodeGlobalId(entityId);
  const id = Number(decoded?.id);
  const table =
    decoded?.type === 'Audience' ? 'audiences' : decoded?.type === 'SegmentDefinition' ? 'segment_definitions' : null;
  const row =
    table && Number.isSafeInteger(id)
      ? (conn.sqlite
          .prepare(
            table === 'audiences'
              ? 'SELECT folder_id AS folderId FROM audiences WHERE sandbox_id = ? AND id = ?'
              : 'SELECT a.folder_id AS folderId FROM segment_definitions d JOIN audiences a ON a.id = d.audience_id WHERE d.sandbox_id = ? AND d.id = ?',
          )
          .get(sandboxId, id) as { folderId: number | null } | undefined)
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
export async function schemaFieldOfHit(
  conn: Connection,
  sandboxId: number,
  entityKey: string,
): Promise<SchemaField | null> {
  const colon = entityKey.indexOf(':');
  const cls = entityKey.slice(0, colon);
  const path = entityKey.slice(colon + 1);
  return schemaFieldsOf(conn, sandboxId).find((f) => f.class === cls && f.path === path) ?? null;
}
