/**
 * The search query language (docs/api.md "Search"): the common Lucene subset, read by the
 * `lucene` parser and turned into a small AST of our own, so the FTS5 translation never sees
 * the parser's quirks. AND binds tighter than OR; terms side by side are ANDed; NOT and `-`
 * negate the clause they precede.
 */
import lucene, {
  type LuceneLocation,
  type LuceneNode,
  type LuceneRange,
  type LuceneSyntaxError,
  type LuceneTerm,
} from 'lucene';
import { DomainError } from '../errors.js';

/** Fields a query may name, as the index columns call them. */
export const SEARCH_FIELDS = [
  'name',
  'description',
  'id',
  'external_id',
  'labels',
  'folder',
  'namespace',
  'expression',
  'path',
  'type',
] as const;
export type SearchField = (typeof SEARCH_FIELDS)[number];

/** Spellings accepted in `field:term` beside the column names. */
const FIELD_ALIASES: Record<string, SearchField> = { externalid: 'external_id', label: 'labels' };

export interface QueryLoc {
  offset: number;
  line: number;
  column: number;
}

export type SearchNode =
  | { kind: 'term'; field: SearchField | null; text: string; fuzzy: number | null; loc: QueryLoc }
  | { kind: 'phrase'; field: SearchField | null; text: string; proximity: number | null; loc: QueryLoc }
  | { kind: 'and'; clauses: SearchNode[] }
  | { kind: 'or'; clauses: SearchNode[] }
  | { kind: 'not'; clause: SearchNode };

export const MAX_QUERY_LENGTH = 1000;

function queryError(message: string, loc?: QueryLoc): DomainError {
  const where = loc ? ` (line ${loc.line}, column ${loc.column})` : '';
  return new DomainError(
    'BAD_USER_INPUT',
    `Search query: ${message}${where}`,
    loc ? { field: 'query', line: loc.line, column: loc.column } : { field: 'query' },
  );
}

const isTerm = (n: unknown): n is LuceneTerm => typeof n === 'object' && n !== null && 'term' in n;
const isRange = (n: unknown): n is LuceneRange => typeof n === 'object' && n !== null && 'term_min' in n;
const locOf = (t: LuceneTerm): QueryLoc => ({ ...t.termLocation.start });

/** Reads a query into the AST; anything unreadable or unsupported is BAD_USER_INPUT saying where. */
export function parseSearchQuery(query: string): SearchNode {
  if (query.trim() === '') throw queryError('the query is empty');
  if (query.length > MAX_QUERY_LENGTH) throw queryError(`the query is over ${MAX_QUERY_LENGTH} characters`);
  let tree: LuceneNode;
  try {
    tree = lucene.parse(query);
  } catch (e) {
    const err = e as LuceneSyntaxError;
    const at = err.location?.start;
    throw queryError(
      `cannot be read: ${err.message.replace(/^Expected .* but /, 'unexpected ').replace(/ found\.$/, '')} — check quotes and parentheses`,
      at ? { ...at } : undefined,
    );
  }
  checkOperators(query);
  return convert(tree, null);
}

const BINARY = new Set(['AND', 'OR', '&&', '||']);

function locAt(query: string, offset: number): QueryLoc {
  const before = query.slice(0, offset);
  const line = before.split('\n').length;
  return { offset, line, column: offset - (before.lastIndexOf('\n') + 1) + 1 };
}

/**
 * Refuses an operator without a term on the side it needs one. The parser drops such an
 * operator (`churn AND` reads as `churn`), reads it as a word inside parentheses (`(churn AND)`)
 * or gives no tree at all (`NOT`); Lucene itself refuses all of them.
 */
function checkOperators(query: string): void {
  const tokens: { text: string; offset: number }[] = [];
  let i = 0;
  while (i < query.length) {
    const c = query[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ text: c, offset: i++ });
    } else {
      // A word, with quoted parts and escapes kept inside it (the parser has checked the quotes).
      const start = i;
      let quoted = false;
      while (i < query.length) {
        const d = query[i]!;
        if (d === '\\') i += 2;
        else if (d === '"') {
          quoted = !quoted;
          i++;
        } else if (!quoted && (/\s/.test(d) || d === '(' || d === ')')) break;
        else i++;
      }
      tokens.push({ text: query.slice(start, i), offset: start });
    }
  }
  const isOperator = (t?: { text: string }) => t !== undefined && (BINARY.has(t.text) || t.text === 'NOT');
  tokens.forEach((t, k) => {
    if (!isOperator(t)) return;
    const before = tokens[k - 1];
    const after = tokens[k + 1];
    if (BINARY.has(t.text) && (before === undefined || before.text === '(' || isOperator(before)))
      throw queryError(`"${t.text}" needs a term before it`, locAt(query, t.offset));
    if (after === undefined || after.text === ')' || (isOperator(after) && !(t.text !== 'NOT' && after.text === 'NOT')))
      throw queryError(`"${t.text}" needs a term after it`, locAt(query, t.offset));
  });
}

interface Item {
  op: string;
  node: LuceneNode | LuceneTerm | LuceneRange;
}

/** One level of `a op b op c …` (the parser nests it to the right) as a flat list. */
function flatten(node: LuceneNode): Item[] {
  const items: Item[] = [{ op: node.start ?? '', node: node.left }];
  let current: LuceneNode = node;
  while (current.operator && current.right) {
    const right = current.right;
    if (!isTerm(right) && !isRange(right) && !right.parenthesized && right.left) {
      items.push({ op: right.start ? `${current.operator} ${right.start}` : current.operator, node: right.left });
      current = right;
    } else {
      items.push({ op: current.operator, node: right });
      break;
    }
  }
  return mergeFuzzyDistances(items);
}

/** lucene 2.1.1 reads `word~1` as `word~` and a separate term `1`: put the distance back. */
function mergeFuzzyDistances(items: Item[]): Item[] {
  const out: Item[] = [];
  for (const item of items) {
    const prev = out[out.length - 1]?.node;
    const node = item.node;
    if (
      prev &&
      isTerm(prev) &&
      prev.similarity != null &&
      item.op === '<implicit>' &&
      isTerm(node) &&
      !node.quoted &&
      node.field === '<implicit>' &&
      /^\d+(\.\d+)?$/.test(node.term) &&
      node.termLocation.start.offset === prev.termLocation.end.offset
    ) {
      prev.similarity = Number(node.term);
      continue;
    }
    out.push(item);
  }
  return out;
}

/** `inherited`: the field of an enclosing `field:(…)` group, for the terms inside that name none. */
function convert(node: LuceneNode | LuceneTerm | LuceneRange, inherited: SearchField | null): SearchNode {
  if (isTerm(node)) return negateIf(node.prefix === '-' || node.prefix === '!', leaf(node, inherited));
  if (isRange(node)) throw queryError('ranges ([a TO b]) are not supported');
  if (!node.left) throw queryError('the query has no term to search for');
  const field = node.field && node.field !== '<implicit>' ? fieldNamed(node.field, node.fieldLocation) : inherited;
  const items = flatten(node);
  const groups: SearchNode[][] = [[]];
  for (const item of items) {
    const op = item.op.replace('||', 'OR').replace('&&', 'AND');
    if (/^OR\b/.test(op)) groups.push([]);
    const clause = convert(item.node, field);
    groups[groups.length - 1]!.push(/\bNOT\b/.test(op) ? negateIf(true, clause) : clause);
  }
  const ands = groups.map((g) => (g.length === 1 ? g[0]! : ({ kind: 'and', clauses: g } as SearchNode)));
  return ands.length === 1 ? ands[0]! : { kind: 'or', clauses: ands };
}

function negateIf(negate: boolean, node: SearchNode): SearchNode {
  if (!negate) return node;
  return node.kind === 'not' ? node.clause : { kind: 'not', clause: node };
}

function fieldNamed(written: string, where: LuceneLocation | null | undefined, fallback?: QueryLoc): SearchField {
  const name = written.toLowerCase();
  const field = (SEARCH_FIELDS as readonly string[]).includes(name) ? (name as SearchField) : FIELD_ALIASES[name];
  if (!field) {
    const at = where ? { ...where.start } : fallback;
    throw queryError(`unknown field "${written}"; fields are ${SEARCH_FIELDS.join(', ')}`, at);
  }
  return field;
}

function fieldOf(t: LuceneTerm, inherited: SearchField | null): SearchField | null {
  if (t.field === '<implicit>') return inherited;
  return fieldNamed(t.field, t.fieldLocation, locOf(t));
}

const unescapeTerm = (text: string) => text.replace(/\\(.)/gs, '$1');

function leaf(t: LuceneTerm, inherited: SearchField | null): SearchNode {
  const loc = locOf(t);
  if (t.regex) throw queryError('regular expressions (/…/) are not supported', loc);
  if (t.boost != null) throw queryError('boosts (^) are not supported', loc);
  const field = fieldOf(t, inherited);
  if (t.quoted) {
    if (t.proximity != null && (!Number.isInteger(t.proximity) || t.proximity < 0 || t.proximity > 100))
      throw queryError('a proximity (~N after a phrase) is a whole number from 0 to 100', loc);
    return { kind: 'phrase', field, text: unescapeTerm(t.term), proximity: t.proximity ?? null, loc };
  }
  let fuzzy: number | null = null;
  if (t.similarity != null) {
    // A bare `~` (read as 0.5) means Lucene's default of two edits.
    fuzzy = t.similarity < 1 ? 2 : t.similarity;
    if (!Number.isInteger(fuzzy) || fuzzy > 2)
      throw queryError('a fuzzy term allows 1 or 2 edits (word~1, word~2)', loc);
  }
  const text = t.term.replace(/(?<!\\)~$/, '');
  if (/^(\\?[*?])+$/.test(text) || (/^[*?]/.test(text) && !/[\p{L}\p{N}]/u.test(text)))
    throw queryError('a wildcard needs a letter or digit beside it', loc);
  return { kind: 'term', field, text: text.replace(/\\([^*?])/g, '$1'), fuzzy, loc };
}

/** The column of the search documents each query field searches (FTS5's and PostgreSQL's alike). */
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
