import { badInput } from './errors.js';

export const ORDER_DIRECTIONS = ['ASC', 'DESC'] as const;
export type OrderDirection = (typeof ORDER_DIRECTIONS)[number];

/** Relay paging arguments as clients send them. */
export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

type Key = (string | number | null)[];

/** What a list query gets: key bounds, direction and how many rows to fetch (one more than the page, to see if another follows). */
interface PageQuery {
  after?: Key;
  before?: Key;
  direction: 'forward' | 'backward';
  /** Rows to fetch: the page size + 1. */
  fetch: number;
}

export interface Page<T> {
  items: T[];
  cursors: string[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 500;

export function encodeCursor(key: Key): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string, field: string): Key {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(key) && key.every((k) => k === null || typeof k === 'string' || typeof k === 'number'))
      return key;
  } catch {}
  throw badInput(`"${field}" is not a cursor this list gave out`, field);
}

/** Validates Relay arguments: `first`/`last` 0–500 (default 20); over the maximum is an error, never a silent cut. */
export function pageQuery(args: PageArgs, maxPageSize = MAX_PAGE_SIZE): PageQuery & { size: number } {
  const { first, last } = args;
  if (first != null && last != null) throw badInput('Give "first" or "last", not both', 'first');
  for (const [name, v] of [
    ['first', first],
    ['last', last],
  ] as const) {
    if (v != null && (!Number.isInteger(v) || v < 0 || v > maxPageSize)) {
      throw badInput(`"${name}" must be between 0 and ${maxPageSize}, got ${v}`, name);
    }
  }
  const direction = last != null ? 'backward' : 'forward';
  const size = first ?? last ?? DEFAULT_PAGE_SIZE;
  return {
    direction,
    size,
    fetch: size + 1,
    after: args.after != null ? decodeCursor(args.after, 'after') : undefined,
    before: args.before != null ? decodeCursor(args.before, 'before') : undefined,
  };
}

/**
 * Turns the rows a keyset query returned (in query direction, one extra) into a page in
 * list order with its cursors.
 */
export function toPage<T>(rows: T[], query: PageQuery & { size: number }, keyOf: (row: T) => Key): Page<T> {
  const more = rows.length > query.size;
  const items = more ? rows.slice(0, query.size) : rows;
  if (query.direction === 'backward') items.reverse();
  return {
    items,
    cursors: items.map((r) => encodeCursor(keyOf(r))),
    hasNextPage: query.direction === 'forward' ? more : query.before !== undefined,
    hasPreviousPage: query.direction === 'backward' ? more : query.after !== undefined,
  };
}

/**
 * For a list ordered by an integer key (newest first: descending), read by one statement per
 * direction that always takes both bounds (statements by name have one text each,
 * db/statement.ts): keys must lie above `above` and below `below`. A missing cursor is a bound
 * every key passes; a cursor that is not an integer (a hand-made one) makes bounds no key passes,
 * the same on either database.
 */
export function integerBounds(
  query: Pick<PageQuery, 'after' | 'before'>,
  order: 'descending' | 'ascending' = 'descending',
): { above: number; below: number } {
  const key = (cursor: Key | undefined) => (cursor === undefined ? undefined : Number(cursor[0]));
  // `after` bounds the side further along the list, `before` the side it comes from.
  const [low, high] =
    order === 'descending' ? [key(query.before), key(query.after)] : [key(query.after), key(query.before)];
  if ([low, high].some((n) => n !== undefined && !Number.isSafeInteger(n))) {
    return { above: Number.MAX_SAFE_INTEGER, below: Number.MIN_SAFE_INTEGER };
  }
  return { above: low ?? Number.MIN_SAFE_INTEGER, below: high ?? Number.MAX_SAFE_INTEGER };
}
