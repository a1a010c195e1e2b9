/**
 * The search AST as an FTS5 MATCH expression. Every word the user typed goes into the
 * expression only inside a double-quoted string (quotes doubled), so nothing they type can be
 * read as FTS5 syntax (NEAR, column filters, `^`, `*`); the operators, column filters and NEAR
 * groups come from the AST alone. `null` is an expression that matches nothing (a fuzzy or
 * wildcard term with no word to expand to, a term with no letters or digits).
 */
import type { Store } from '../../db/store.js';
import { badInput } from '../errors.js';
import type { SearchField, SearchNode } from './query.js';
import { fuzzyWords, searchTokens, wildcardWords } from './vocabulary.js';

/** The FTS5 column each query field searches. */
export const FIELD_COLUMNS: Record<SearchField, string> = {
  name: 'name',
  description: 'description',
  id: 'gid',
  external_id: 'external_id',
  labels: 'labels',
  folder: 'folder',
  namespace: 'namespace',
  expression: 'expression',
  path: 'path',
  type: 'type',
};

const quote = (text: string) => `"${text.replaceAll('"', '""')}"`;
const column = (field: SearchField | null) => (field ? `{${FIELD_COLUMNS[field]}} : ` : '');
const anyOf = (field: SearchField | null, words: string[]) =>
  words.length === 0 ? null : `${column(field)}(${words.map(quote).join(' OR ')})`;

export interface MatchContext {
  conn: Store;
  sandboxId: number;
}

export async function toFtsMatch(node: SearchNode, ctx: MatchContext): Promise<string | null> {
  switch (node.kind) {
    case 'term':
      return termMatch(node, ctx);
    case 'phrase': {
      const words = searchTokens(node.text);
      if (words.length === 0) return null;
      if (node.proximity != null && words.length > 1)
        return `${column(node.field)}NEAR(${words.map(quote).join(' ')}, ${node.proximity})`;
      return `${column(node.field)}${quote(words.join(' '))}`;
    }
    case 'or': {
      const parts: (string | null)[] = [];
      for (const c of node.clauses) {
        if (c.kind === 'not')
          throw badInput('Search query: NOT needs a term to subtract from, e.g. "a OR (b NOT c)"', 'query');
        parts.push(await toFtsMatch(c, ctx));
      }
      const live = parts.filter((p): p is string => p !== null);
      return live.length === 0 ? null : `(${live.join(' OR ')})`;
    }
    case 'and': {
      const positives = node.clauses.filter((c) => c.kind !== 'not');
      if (positives.length === 0)
        throw badInput('Search query: every term is negated; add a term that must match', 'query');
      const must: (string | null)[] = [];
      for (const c of positives) must.push(await toFtsMatch(c, ctx));
      if (must.some((m) => m === null)) return null;
      const mustNot: string[] = [];
      for (const c of node.clauses) {
        if (c.kind !== 'not') continue;
        const m = await toFtsMatch(c.clause, ctx);
        if (m !== null) mustNot.push(m);
      }
      return `(${must.join(' AND ')})${mustNot.map((m) => ` NOT ${m}`).join('')}`;
    }
    case 'not':
      throw badInput('Search query: every term is negated; add a term that must match', 'query');
  }
}

async function termMatch(node: Extract<SearchNode, { kind: 'term' }>, ctx: MatchContext): Promise<string | null> {
  const plain = !/[*?]/.test(node.text) && !node.fuzzy;
  // A plain term of several words (`homeAddress.city`) is the phrase the tokenizer makes of it.
  if (plain) {
    const words = searchTokens(node.text);
    return words.length === 0 ? null : `${column(node.field)}${quote(words.join(' '))}`;
  }
  // Split the way the tokenizer will, keeping wildcards inside their word.
  const pieces =
    node.text
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .match(/[\p{L}\p{N}*?]+/gu) ?? [];
  const part = async (piece: string) => {
    const word = piece.replace(/[*?]/g, '');
    if (!/[*?]/.test(piece)) {
      return node.fuzzy
        ? anyOf(node.field, await fuzzyWords(ctx.conn, ctx.sandboxId, word, node.fuzzy))
        : anyOf(node.field, [word]);
    }
    if (/^[^*?]+\*$/.test(piece)) return `${column(node.field)}${quote(word)}*`;
    return anyOf(node.field, await wildcardWords(ctx.conn, ctx.sandboxId, piece));
  };
  const parts: (string | null)[] = [];
  for (const piece of pieces) parts.push(await part(piece));
  if (parts.length === 0 || parts.some((p) => p === null)) return null;
  return parts.length === 1 ? parts[0]! : `(${parts.join(' AND ')})`;
}
