/**
 * A resolved search (ts-match.ts `toTsMatch`: the AST with fuzzy and wildcard terms expanded to
 * words, the same resolution PostgreSQL's predicate is built from) as an FTS5 MATCH expression.
 * Every word the user typed goes into the expression only inside a double-quoted string (quotes
 * doubled), so nothing they type can be read as FTS5 syntax (NEAR, column filters, `^`, `*`);
 * the operators, column filters and NEAR groups come from the tree alone. `null` is an
 * expression that matches nothing (a fuzzy or wildcard term with no word to expand to, a term
 * with no letters or digits).
 */
import type { Store } from '../../db/store.js';
import { FIELD_COLUMNS, type SearchField, type SearchNode } from './query.js';
import { type TsLeaf, type TsMatch, toTsMatch } from './ts-match.js';

const quote = (text: string) => `"${text.replaceAll('"', '""')}"`;
const column = (field: SearchField | null) => (field ? `{${FIELD_COLUMNS[field]}} : ` : '');

export interface MatchContext {
  conn: Store;
  sandboxId: number;
}

export async function toFtsMatch(node: SearchNode, ctx: MatchContext): Promise<string | null> {
  const resolved = await toTsMatch(node, ctx);
  return resolved === null ? null : render(resolved);
}

function render(match: TsMatch): string {
  switch (match.kind) {
    case 'leaf':
      return leaf(match.leaf);
    case 'or':
      return `(${match.any.map(render).join(' OR ')})`;
    case 'and':
      return `(${match.must.map(render).join(' AND ')})${match.mustNot.map((m) => ` NOT ${render(m)}`).join('')}`;
  }
}

function leaf(l: TsLeaf): string {
  switch (l.kind) {
    // A plain term of several words (`homeAddress.city`) is the phrase the tokenizer makes of it.
    case 'phrase':
      return `${column(l.field)}${quote(l.words.join(' '))}`;
    case 'prefix':
      return `${column(l.field)}${quote(l.word)}*`;
    case 'any':
      return `${column(l.field)}(${l.words.map(quote).join(' OR ')})`;
    case 'near':
      return `${column(l.field)}NEAR(${l.words.map(quote).join(' ')}, ${l.distance})`;
  }
}
