/**
 * The boundary between the SQL compiler and the database it writes for. Everything the
 * compiler emits that is not plain standard SQL goes through one `Dialect`: JSON reads and
 * their SQL types, array and map rows, booleans, the functions that differ (case mapping,
 * regex, `like`, lengths, time arithmetic), number arithmetic, set queries, and how bound
 * parameters are written. sqlite-dialect.ts writes exactly the SQL this compiler has always
 * written; postgres-dialect.ts writes PostgreSQL over `jsonb` columns.
 *
 * The dialect is the active one of the compilation in progress (`withDialect`), not an
 * argument: the fragments that differ are built deep inside helpers (`valueSql`,
 * `existsSql`, …) that take no context, and a compilation is synchronous, so one module slot
 * set and restored around it is exact.
 */
import type { PqlType } from '../check/types.js';
import type { ArithmeticOp } from '../language/ast.js';
import { raw, type Sql, sql } from './fragment.js';

export type DialectName = 'sqlite' | 'postgres';

/** A JSON array (or object) at a path of a document, as a row source. */
export interface JsonRows {
  /** The FROM item, aliased. */
  from: Sql;
  /** The condition that the document has a value (not null) at the path. */
  present: Sql;
  /** The element count (0 when there is no array). */
  length: Sql;
}

export interface Dialect {
  readonly name: DialectName;
  readonly trueSql: string;
  readonly falseSql: string;
  /** `x`, with NULL (unknown) read as false / true. */
  orFalse(x: Sql): Sql;
  orTrue(x: Sql): Sql;
  /** `EXISTS (sub)` as a correlated sub-query (see values.ts `existsPredicate` for the top-level form). */
  exists(sub: Sql): Sql;
  /** The value at `path` of a JSON document as the SQL value of a PQL `type`; NULL when absent or JSON null. */
  readJson(doc: Sql, path: readonly string[], type: PqlType): Sql;
  /** A document number as read for arithmetic and comparison (doubles, as JS computes). */
  number(read: Sql): Sql;
  /** The whole element of a JSON array row (`alias.value`) as the SQL value of `type`. */
  readElement(alias: string, type: PqlType): Sql;
  /**
   * The value at `path` of `doc` contains the JSON `json`; written on `doc` itself when
   * `indexed` (an index of the column answers it), else on the value; undefined when the
   * database has no containment (equality.ts).
   */
  contains(doc: Sql, path: readonly string[], json: string, indexed: boolean): Sql | undefined;
  /**
   * The value at `path` (at least one step) of `doc` is one of `values`, of the same JSON type,
   * in a form cheaper than comparing the typed read; undefined where there is none (equality.ts).
   */
  jsonEquals(doc: Sql, path: readonly string[], values: readonly (string | boolean)[]): Sql | undefined;
  /**
   * The condition that `path` of `doc` holds a value (not null) of another JSON type than
   * `type`, where `readJson` reads such a value as missing though the JS evaluator sees it
   * (`x notIn [...]` holds for it); undefined where `readJson` already returns it.
   */
  otherTypePresent(doc: Sql, path: readonly string[], type: PqlType): Sql | undefined;
  /** The JSON type name at `path` ('null', 'object', 'array', …; NULL when absent). */
  jsonType(doc: Sql, path: readonly string[]): Sql;
  /** The elements of the JSON array at `path` as rows `alias.key` (order) and `alias.value`. */
  arrayRows(doc: Sql, path: readonly string[], alias: string): JsonRows;
  /** A constant JSON array (bound as JSON text) or built from values, as rows like `arrayRows`. */
  literalRows(array: { json: string } | { items: readonly Sql[] }, alias: string): Sql;
  /** The member of the object at `path` named `key`, as the SQL value of `type`. */
  mapGet(doc: Sql, path: readonly string[], key: Sql, alias: string, type: PqlType): Sql;
  /** The keys or values of the object at `path` in document order, and the condition that it is an object. */
  mapRows(doc: Sql, path: readonly string[], column: 'key' | 'value', alias: string): { select: Sql; isObject: Sql };
  /** What follows `events AS e1` when the planner should scan rather than use an index. */
  readonly scanHint: string;
  /**
   * Whether a set of events read once keeps its sub-query conditions (an `exists` over a
   * document's array) apart from the ones that choose how the table is read (hoist.ts).
   */
  readonly fencesSubQueries: boolean;
  /** A sub-query used as a FROM item without a name of its own. */
  derived(sub: Sql): Sql;
  /** `x` in code-point order (the order of the JS engine) for `<`, ORDER BY, min/max. */
  ordered(x: Sql): Sql;
  lower(x: Sql): Sql;
  upper(x: Sql): Sql;
  /** A cheaper lower-casing that is exact for ASCII needles without `i`/`k` (strings.ts asciiFoldable), or undefined. */
  asciiLower(x: Sql): Sql | undefined;
  /** Whether `x LIKE 'prefix%'` folds ASCII case (SQLite's LIKE does). */
  readonly likeFoldsAscii: boolean;
  /** Length in code points. */
  length(x: Sql): Sql;
  /** 1-based position of the first `y` in `x` (0 when none; 1 for an empty y). */
  position(x: Sql, y: Sql): Sql;
  endsWith(x: Sql, y: Sql): Sql;
  /** Whether `endsWith` costs enough per row (a function call) that a native substring test should go first. */
  readonly endsWithCostly: boolean;
  /** `x like pattern` with PQL's wildcards and escapes. */
  like(x: Sql, pattern: string): Sql;
  regexMatches(x: Sql, pattern: string): Sql;
  regexGroup(x: Sql, pattern: string, n: Sql): Sql;
  /** `x op y` on numbers as JS computes it: doubles, missing (NULL) for division by zero and a non-finite result. */
  arithmetic(op: Exclude<ArithmeticOp, '%'>, x: Sql, y: Sql, constant?: ArithmeticConstant): Sql;
  modulo(x: Sql, y: Sql): Sql;
  negate(x: Sql): Sql;
  /** A computed number, missing (NULL) when it is not finite (a sum that overflowed to ±Infinity). */
  finite(x: Sql): Sql;
  /** An instant given as canonical ISO text or epoch ms, in epoch ms / as canonical ISO text. */
  toMs(x: Sql): Sql;
  toIso(x: Sql): Sql;
  /** The UTC year, month or day of month of an instant in ms. */
  datePart(part: 'year' | 'month' | 'day', ms: Sql): Sql;
  /** `age(t)` at `now` in whole years, t in epoch ms. */
  age(t: Sql, now: Sql): Sql;
  /** `t occurs <tail>` with per-row references (instants in epoch ms), the tail described by `spec` (JSON). */
  occurs(t: Sql, spec: Sql, ref: Sql, to: Sql, now: Sql): Sql;
  /**
   * The number at `path` of `doc` as an exact decimal (NULL when it is not a number), for
   * sums taken in one grouped pass (hoist.ts); undefined where sums stay one probe per profile.
   */
  readDecimal(doc: Sql, path: readonly string[]): Sql | undefined;
  /** The aggregate function of PQL sum / average (SQLite's compensated sums). */
  sumFunction(fn: 'sum' | 'average'): string;
  /**
   * Whether that aggregate must be given the items' order in its call (`f(v ORDER BY …)`):
   * PostgreSQL does not promise to feed an aggregate in a subquery's order, SQLite does.
   */
  orderedSums: boolean;
  /** The statement's text and parameters as the driver takes them. */
  render(s: Sql): { sql: string; params: unknown[] };
}

/** One operand of an arithmetic known at compile time: its value, and whether it is the left one. */
export interface ArithmeticConstant {
  value: number;
  left: boolean;
}

/**
 * A construct the active dialect cannot compile with the JS engine's meaning. to-sql.ts turns
 * it into a PqlError at the innermost expression being compiled.
 */
export class BackendUnsupported extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'BackendUnsupported';
  }
}

let active: Dialect | undefined;

/** The dialect of the compilation in progress. */
export function dialect(): Dialect {
  if (active === undefined) throw new Error('PQL to SQL: SQL fragments are built only inside a compilation');
  return active;
}

/** Runs `compile` with `d` as the active dialect. */
export function withDialect<T>(d: Dialect, compile: () => T): T {
  const outer = active;
  active = d;
  try {
    return compile();
  } finally {
    active = outer;
  }
}

export function trueSql(): Sql {
  return raw(dialect().trueSql);
}

export function falseSql(): Sql {
  return raw(dialect().falseSql);
}

/** A correlated `EXISTS (sub)`, as the active dialect protects it. */
export function existsSql(sub: Sql): Sql {
  return dialect().exists(sub);
}

/** `NOT x` where x may be unknown (NULL): missing flips to true. */
export function notKnown(x: Sql): Sql {
  return sql`NOT ${dialect().orFalse(x)}`;
}
