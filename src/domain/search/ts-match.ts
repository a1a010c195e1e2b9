/**
 * The search AST as a PostgreSQL text-search predicate over `search_documents d`, the
 * counterpart of fts-match.ts. Nothing the user typed is ever part of the SQL text: each leaf's
 * words go in a bound parameter and become a tsquery on the server (phraseto_tsquery, or
 * to_tsquery over quote_literal of each word), after the same cutting and folding as the
 * documents (segql_search_words and the `segql_search` configuration, pg migration
 * `search_words`); the operators and the columns come from the AST alone.
 *
 * Unscoped single words are answered by the indexed `search_vector`; a phrase or a NEAR group
 * must also hold inside one column (FTS5 never matches across columns, and the concatenated
 * vector would), and a field-scoped leaf matches its column only: both compute that column's
 * vector in the query, which is cheap after the sandbox filter (a sandbox's documents are its
 * audiences, definitions and schema fields).
 *
 * NEAR (`"a b"~N`): FTS5 matches when at most N tokens stand between the first word and the last,
 * in any order (the other words' tokens count). For two words that is exact here: `a <k> b |
 * b <k> a` for k from 1 to N + 1. For more words it is approximated: every pair of them within
 * N + 1 positions of each other, each pair checked on its own, so different occurrences of a
 * word may satisfy different pairs. That finds every document FTS5 finds, and may find more.
 */
import type { Store } from '../../db/store.js';
import { badInput } from '../errors.js';
import { FIELD_COLUMNS, SEARCH_FIELDS, type SearchField, type SearchNode } from './query.js';
import { fuzzyWords, searchTokens, wildcardWords } from './vocabulary.js';

/** A leaf of the query with its words known (fuzzy and wildcard terms expanded). */
export type TsLeaf =
  /** Words next to each other, in order; one word is a plain term. */
  | { kind: 'phrase'; field: SearchField | null; words: string[] }
  | { kind: 'prefix'; field: SearchField | null; word: string }
  /** Any one of these words (a fuzzy or wildcard term's expansion). */
  | { kind: 'any'; field: SearchField | null; words: string[] }
  | { kind: 'near'; field: SearchField | null; words: string[]; distance: number };

export type TsMatch =
  | { kind: 'leaf'; leaf: TsLeaf }
  | { kind: 'and'; must: TsMatch[]; mustNot: TsMatch[] }
  | { kind: 'or'; any: TsMatch[] };

export interface TsMatchContext {
  conn: Store;
  sandboxId: number;
}

const leaf = (l: TsLeaf): TsMatch => ({ kind: 'leaf', leaf: l });

/** The query with its words resolved, or null when it can match nothing (as toFtsMatch). */
export async function toTsMatch(node: SearchNode, ctx: TsMatchContext): Promise<TsMatch | null> {
  switch (node.kind) {
    case 'term':
      return termMatch(node, ctx);
    case 'phrase': {
      const words = searchTokens(node.text);
      if (words.length === 0) return null;
      if (node.proximity != null && words.length > 1)
        return leaf({ kind: 'near', field: node.field, words, distance: node.proximity });
      return leaf({ kind: 'phrase', field: node.field, words });
    }
    case 'or': {
      const parts: TsMatch[] = [];
      for (const c of node.clauses) {
        if (c.kind === 'not')
          throw badInput('Search query: NOT needs a term to subtract from, e.g. "a OR (b NOT c)"', 'query');
        const m = await toTsMatch(c, ctx);
        if (m !== null) parts.push(m);
      }
      return parts.length === 0 ? null : { kind: 'or', any: parts };
    }
    case 'and': {
      const positives = node.clauses.filter((c) => c.kind !== 'not');
      if (positives.length === 0)
        throw badInput('Search query: every term is negated; add a term that must match', 'query');
      const must: (TsMatch | null)[] = [];
      for (const c of positives) must.push(await toTsMatch(c, ctx));
      if (must.some((m) => m === null)) return null;
      const mustNot: TsMatch[] = [];
      for (const c of node.clauses) {
        if (c.kind !== 'not') continue;
        const m = await toTsMatch(c.clause, ctx);
        if (m !== null) mustNot.push(m);
      }
      return { kind: 'and', must: must as TsMatch[], mustNot };
    }
    case 'not':
      throw badInput('Search query: every term is negated; add a term that must match', 'query');
  }
}

async function termMatch(node: Extract<SearchNode, { kind: 'term' }>, ctx: TsMatchContext): Promise<TsMatch | null> {
  const field = node.field;
  if (!/[*?]/.test(node.text) && !node.fuzzy) {
    const words = searchTokens(node.text);
    return words.length === 0 ? null : leaf({ kind: 'phrase', field, words });
  }
  const pieces =
    node.text
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .match(/[\p{L}\p{N}*?]+/gu) ?? [];
  const anyOf = (words: string[]) => (words.length === 0 ? null : leaf({ kind: 'any', field, words }));
  const part = async (piece: string): Promise<TsMatch | null> => {
    const word = piece.replace(/[*?]/g, '');
    if (!/[*?]/.test(piece))
      return node.fuzzy
        ? anyOf(await fuzzyWords(ctx.conn, ctx.sandboxId, word, node.fuzzy))
        : leaf({ kind: 'phrase', field, words: [word] });
    if (/^[^*?]+\*$/.test(piece)) return leaf({ kind: 'prefix', field, word });
    return anyOf(await wildcardWords(ctx.conn, ctx.sandboxId, piece));
  };
  const parts: (TsMatch | null)[] = [];
  for (const piece of pieces) parts.push(await part(piece));
  if (parts.length === 0 || parts.some((p) => p === null)) return null;
  return parts.length === 1 ? parts[0]! : { kind: 'and', must: parts as TsMatch[], mustNot: [] };
}

/**
 * Bound parameters of one statement, `$n` each. A word or word list used twice is bound once;
 * numbers and nulls are bound each time, so no parameter is read as two types.
 */
export class SqlParams {
  readonly values: unknown[] = [];
  private readonly seen = new Map<string, string>();

  add(value: unknown): string {
    const share = typeof value === 'string' || Array.isArray(value);
    const key = JSON.stringify(value);
    const known = share ? this.seen.get(key) : undefined;
    if (known) return known;
    this.values.push(value);
    const ref = `$${this.values.length}`;
    if (share) this.seen.set(key, ref);
    return ref;
  }
}

const CONFIG = "'segql_search'";
const words = (ref: string) => `segql_search_words(${ref})`;
/** A word list parameter, each word cut and folded, those left with no letter or digit dropped. */
const folded = (ref: string) =>
  `(SELECT ${words('u.w')} AS w, u.i FROM unnest(CAST(${ref} AS text[])) WITH ORDINALITY AS u(w, i) WHERE ${words('u.w')} ~ '[[:alnum:]]')`;

/** The tsquery of one leaf, as SQL whose only inputs are bound parameters. */
export function leafQuery(l: TsLeaf, p: SqlParams): string {
  switch (l.kind) {
    case 'phrase':
      return `phraseto_tsquery(${CONFIG}, ${words(p.add(l.words.join(' ')))})`;
    case 'prefix': {
      const w = words(p.add(l.word));
      return `(CASE WHEN ${w} ~ '[[:alnum:]]' THEN to_tsquery(${CONFIG}, quote_literal(${w}) || ':*') ELSE CAST('' AS tsquery) END)`;
    }
    case 'any':
      return `to_tsquery(${CONFIG}, coalesce((SELECT string_agg(quote_literal(f.w), ' | ') FROM ${folded(p.add(l.words))} AS f), ''))`;
    case 'near': {
      const list = p.add(l.words);
      const widest = p.add(l.distance + 1);
      // Per pair of words (a before b in the query): `(a <1> b | b <1> a | … | a <k> b | b <k> a)`.
      return (
        `to_tsquery(${CONFIG}, coalesce((SELECT string_agg(pair, ' & ') FROM (` +
        `SELECT '(' || string_agg(format('%s <%s> %s | %s <%s> %s', quote_literal(a.w), k, quote_literal(b.w), quote_literal(b.w), k, quote_literal(a.w)), ' | ') || ')' AS pair ` +
        `FROM ${folded(list)} AS a JOIN ${folded(list)} AS b ON a.i < b.i CROSS JOIN generate_series(1, CAST(${widest} AS integer)) AS k ` +
        `GROUP BY a.i, b.i) AS pairs), ''))`
      );
    }
  }
}

/** A column's vector, computed in the query. */
export const columnVector = (field: SearchField, alias = 'd') =>
  `to_tsvector(${CONFIG}, ${words(`${alias}.${FIELD_COLUMNS[field]}`)})`;

/** Whether a leaf needs its words inside one column (more than one word in it). */
const spansWords = (l: TsLeaf) => (l.kind === 'phrase' || l.kind === 'near') && l.words.length > 1;

/**
 * The predicate of a match. `scope`: the column every leaf is held to (the name-first order
 * asks whether the name alone satisfies the query); a leaf scoped to another column then
 * matches nothing, as FTS5's nested column filters intersect.
 */
export function tsPredicate(m: TsMatch, p: SqlParams, scope: SearchField | null = null): string {
  switch (m.kind) {
    case 'leaf': {
      const l = m.leaf;
      if (scope && l.field && l.field !== scope) return 'FALSE';
      const column = l.field ?? scope;
      const q = leafQuery(l, p);
      if (column) return `(${columnVector(column)} @@ ${q})`;
      if (!spansWords(l)) return `(d.search_vector @@ ${q})`;
      return `(d.search_vector @@ ${q} AND (${SEARCH_FIELDS.map((f) => `${columnVector(f)} @@ ${q}`).join(' OR ')}))`;
    }
    case 'and':
      return `(${m.must.map((c) => tsPredicate(c, p, scope)).join(' AND ')}${m.mustNot.map((c) => ` AND NOT ${tsPredicate(c, p, scope)}`).join('')})`;
    case 'or':
      return `(${m.any.map((c) => tsPredicate(c, p, scope)).join(' OR ')})`;
  }
}

/** The leaves a hit is found by (none under a NOT): what is ranked and highlighted. */
export function positiveLeaves(m: TsMatch): TsLeaf[] {
  if (m.kind === 'leaf') return [m.leaf];
  if (m.kind === 'or') return m.any.flatMap(positiveLeaves);
  return m.must.flatMap(positiveLeaves);
}

/** One tsquery of any of the leaves (null when none): `field` keeps those that may match in it. */
export function anyLeafQuery(leaves: TsLeaf[], p: SqlParams, field: SearchField | null = null): string | null {
  const mine = field ? leaves.filter((l) => l.field === null || l.field === field) : leaves;
  return mine.length === 0 ? null : `(${mine.map((l) => leafQuery(l, p)).join(' || ')})`;
}
