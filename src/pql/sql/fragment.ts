/**
 * The building blocks of the SQL compiler: SQL fragments that carry their bound parameters
 * (so a fragment can be inlined anywhere, any number of times, and its `?`s stay in order),
 * and the compiled forms of PQL values.
 *
 * Nothing the user wrote is ever spliced into SQL text: user values go through `param()`;
 * `raw()` takes only text this compiler itself produced (aliases, keywords, operators).
 */

import type { PqlType } from '../check/types.js';
import type { AggregateFn } from '../language/ast.js';
import type { DrivenIds, IdSets } from './sets.js';

export class Sql {
  constructor(
    readonly text: string,
    readonly params: readonly unknown[],
  ) {}
}

type SqlPart = Sql | string;

/** A template whose interpolations are fragments (params carried along) or compiler-made text. */
export function sql(strings: TemplateStringsArray, ...parts: SqlPart[]): Sql {
  let text = strings[0]!;
  const params: unknown[] = [];
  parts.forEach((part, i) => {
    if (typeof part === 'string') {
      text += part;
    } else {
      text += part.text;
      params.push(...part.params);
    }
    text += strings[i + 1]!;
  });
  return new Sql(text, params);
}

/** A bound value. Booleans become 1/0 (SQLite's and JSON's representation of true/false). */
export function param(value: unknown): Sql {
  if (typeof value === 'boolean') return new Sql('?', [value ? 1 : 0]);
  return new Sql('?', [value]);
}

/** Text made by the compiler itself (never anything from the expression). */
export function raw(text: string): Sql {
  return new Sql(text, []);
}

/**
 * Whether two fragments are the same expression up to the names of their table aliases
 * (`e1` in one, `e7` in the other: a `let` is compiled afresh at each use). Compiler-made
 * text only, where an alias is a letter and a number.
 */
export function sameExpression(a: Sql, b: Sql): boolean {
  if (a.params.length !== b.params.length || a.params.some((v, i) => v !== b.params[i])) return false;
  const canonical = (text: string) => {
    const names = new Map<string, string>();
    return text.replace(/\b[ejdm]\d+\b/g, (alias) => {
      if (!names.has(alias)) names.set(alias, `#${names.size}`);
      return names.get(alias)!;
    });
  };
  return canonical(a.text) === canonical(b.text);
}

export function joinSql(parts: readonly Sql[], separator: string): Sql {
  return new Sql(
    parts.map((p) => p.text).join(separator),
    parts.flatMap((p) => p.params),
  );
}

export const TRUE = raw('1');
export const FALSE = raw('0');
export const NULL_SQL = raw('NULL');

/** How a datetime is carried in SQL: epoch ms (`events.ts`, bound bounds) or canonical ISO text (documents). */
export type DatetimeRep = 'ms' | 'iso';

/** A JS-known value: literals, time words, `date(...)`; datetimes as ms. */
export type ConstantValue = string | number | boolean | null;

/**
 * A single value in SQL. NULL is missing, except when `predicate` is set: then the value is a
 * condition and NULL means false (SQL's unknown from a comparison with a missing operand),
 * which is harmless under AND/OR/WHERE/CASE WHEN and is flattened with coalesce wherever it
 * is used as a value or negated.
 */
export interface ScalarValue {
  kind: 'scalar';
  sql: Sql;
  type: PqlType;
  nullable: boolean;
  predicate: boolean;
  /** Set when `type` is datetime. */
  rep?: DatetimeRep;
  /**
   * The condition as a direct conjunct of the statement's outermost WHERE (where NULL already
   * is false), when that differs from `sql`: a single-table EXISTS left open to SQLite's
   * EXISTS-to-join rewrite (see `existsSql`).
   */
  topLevel?: Sql;
  /** For a condition: the profiles it holds / fails for as uncorrelated id queries (to-sql-sets.ts). */
  idSets?: IdSets;
  /** For a condition: a set of ids to start from, with conditions on `p.id` only (to-sql-sets.ts). */
  driven?: DrivenIds;
  /** For `subject op bound` (a comparison with a constant): see to-sql.ts mergeComparisons. */
  compared?: { subject: Sql; op: string; bound: Sql };
  /** For a condition `lo <= subject <= hi` on a datetime (inclusive ms, null sides open): see to-sql-time.mergeRanges. */
  range?: { subject: ScalarValue; lo: number | null; hi: number | null };
  /** For an aggregate over events: what a comparison with a constant needs to become a grouped sub-query. */
  eventAggregate?: EventAggregate;
  /** For `age(t)`: t, so a comparison with a constant becomes a range on t. */
  ageOf?: ScalarValue;
  /** A document number as stored (an INTEGER may be a 64-bit value that JS rounds); `sql` is it as a double. */
  stored?: Sql;
  /** The value when it is known at compile time (`undefined` when it is not). */
  constant?: ConstantValue;
}

/**
 * Where an item's fields live. The profile is `p`; an event row has real columns `ts` and
 * `event_type` and the rest in `payload`; an element of a JSON array (or a derived table of
 * them) is the `value` column, a JSONB object or a scalar.
 */
export type ItemScope = { kind: 'profile' } | { kind: 'event'; alias: string } | { kind: 'json'; alias: string };

/**
 * An object (or map) value not yet read: the item it belongs to and the path below it.
 * `wrap` turns a read of that item into a sub-query (`head()` picks one item of a collection).
 */
export interface ObjectValue {
  kind: 'object';
  type: PqlType;
  item: ItemScope;
  path: readonly string[];
  wrap?: (inner: Sql) => Sql;
  /** For a whole item picked by `head()`: the condition that there is one. */
  present?: Sql;
}

/**
 * An array: the rows of `from` that satisfy every `where` condition, each row an item read
 * through `item`, in source order `order` (events by time then id, JSON arrays by index).
 */
export interface CollectionValue {
  kind: 'collection';
  type: PqlType;
  itemType: PqlType;
  from: Sql;
  where: Sql[];
  item: ItemScope;
  order: Sql[];
  /** When the array itself may be missing (a document path): the condition that it is present. */
  present: Sql | null;
  /** The element count without a sub-query, for an unfiltered document array. */
  length?: Sql;
  /**
   * For the profile's events, possibly filtered: the alias and the conditions besides the
   * link to the profile, so a condition that reads nothing else can become one uncorrelated
   * sub-query over the events of the sandbox (to-sql-hoist.ts).
   */
  events?: { alias: string; conds: Sql[] };
}

export type CompiledValue = ScalarValue | ObjectValue | CollectionValue;

export interface EventAggregate {
  fn: AggregateFn;
  source: CollectionValue;
  /** The per-event value (null for count). */
  input: Sql | null;
}

export const BOOLEAN_TYPE: PqlType = { kind: 'boolean' };
export const NUMBER_TYPE: PqlType = { kind: 'number' };
export const STRING_TYPE: PqlType = { kind: 'string' };
export const DATETIME_TYPE: PqlType = { kind: 'datetime' };
export const ANY_TYPE: PqlType = { kind: 'any' };

/** A condition (NULL means false). */
export function predicate(s: Sql, nullable: boolean): ScalarValue {
  return { kind: 'scalar', sql: s, type: BOOLEAN_TYPE, nullable, predicate: true };
}

export function constantPredicate(value: boolean): ScalarValue {
  return { ...predicate(value ? TRUE : FALSE, false), constant: value };
}

/**
 * `EXISTS (sub)` kept as a correlated sub-query: written `+EXISTS`, which SQLite's
 * EXISTS-to-join rewrite leaves alone. SQLite 3.53 gets nested EXISTS wrong when it rewrites
 * both levels into one join and places another table between them (e.g. `SELECT count(*)
 * FROM events e1 WHERE EXISTS (SELECT 1 FROM events e2 WHERE EXISTS (SELECT 1 FROM
 * jsonb_each(e2.payload, '$.items')))` counts 0 where a row of e2 has items but the first
 * does not), so every EXISTS the compiler writes is protected except a single-table one at
 * the top of the statement (`topLevel`).
 */
export function existsSql(sub: Sql): Sql {
  return sql`+EXISTS (${sub})`;
}

/** The condition `EXISTS (sub)`; `singleTable` when `sub` reads one table (then it may be a top-level join). */
export function existsPredicate(sub: Sql, singleTable: boolean): ScalarValue {
  const v = predicate(existsSql(sub), false);
  return singleTable ? { ...v, topLevel: sql`EXISTS (${sub})` } : v;
}

/** A boolean value read as a condition: a missing boolean field is false. */
export function asCondition(v: ScalarValue): ScalarValue {
  return v.predicate ? v : { ...v, predicate: true };
}

/** The SQL of a value used as a value: a condition's NULL becomes 0. */
export function valueSql(v: ScalarValue): Sql {
  return v.predicate && v.nullable ? sql`coalesce(${v.sql}, 0)` : v.sql;
}

/** The SQL of a condition, for WHERE / AND / OR / CASE WHEN, where NULL already acts as false. */
export function conditionSql(v: ScalarValue): Sql {
  return v.sql;
}

/** The SQL of a condition that must be exactly 1 or 0. */
export function exactConditionSql(v: ScalarValue): Sql {
  return v.nullable ? sql`coalesce(${v.sql}, 0)` : v.sql;
}

/** `NOT c`, exact even when c is NULL (missing flips to true). */
export function notSql(v: ScalarValue): Sql {
  return v.nullable ? sql`NOT coalesce(${v.sql}, 0)` : sql`NOT (${v.sql})`;
}

/**
 * A JSON path for `json_extract`: `$.a.b`, with any segment that is not a plain identifier
 * quoted (`$."page-name"`); SQLite unescapes `\"` and `\\` inside the quotes.
 */
export function jsonPath(segments: readonly string[]): string {
  let path = '$';
  for (const s of segments) {
    path += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? `.${s}` : `."${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  }
  return path;
}

/** A value known at compile time, bound as a parameter (`null` is missing). */
export function literal(value: string | number | boolean | null, type: PqlType): ScalarValue {
  if (value === null) return { kind: 'scalar', sql: NULL_SQL, type, nullable: true, predicate: false, constant: null };
  return { kind: 'scalar', sql: param(value), type, nullable: false, predicate: false, constant: value };
}

/** A value computed in SQL that may be missing. */
export function scalarOf(s: Sql, type: PqlType): ScalarValue {
  return { kind: 'scalar', sql: s, type, nullable: true, predicate: false };
}
