/**
 * The compiled forms of PQL values: a single value (`ScalarValue`), an object not yet read,
 * an array (`CollectionValue`), and what a value knows about itself that lets the compiler
 * write a cheaper statement than the plain translation.
 */

import type { PqlType } from '../check/types.js';
import type { AggregateFn } from '../language/ast.js';
import { dialect, existsSql, falseSql, notKnown, trueSql } from './dialect.js';
import { NULL_SQL, param, type Sql, sql } from './fragment.js';

/** How a datetime is carried in SQL: epoch ms (`events.ts`, bound bounds) or canonical ISO text (documents). */
export type DatetimeRep = 'ms' | 'iso';

/** A JS-known value: literals, time words, `date(...)`; datetimes as ms. */
export type ConstantValue = string | number | boolean | null;

/**
 * A single value in SQL. NULL is missing, except when `predicate` is set: then the value is a
 * condition and NULL means false (SQL's unknown from a comparison with a missing operand),
 * which is harmless under AND/OR/WHERE/CASE WHEN and is flattened with coalesce wherever it
 * is used as a value or negated.
 *
 * The first fields say what the value is; any transformation of `sql` must restate them. The
 * optional groups below are optimisation facts: each promises something about `sql`
 * that a later step may use to write a cheaper statement, and none changes what the value
 * is, so a step that does not know a group may drop it (never keep one that no longer holds).
 */
export interface ScalarValue {
  kind: 'scalar';
  sql: Sql;
  type: PqlType;
  nullable: boolean;
  predicate: boolean;
  /** Set when `type` is datetime. */
  rep?: DatetimeRep;
  /** The value when it is known at compile time (`undefined` when it is not). */
  constant?: ConstantValue;
  /** A document number as stored (an INTEGER may be a 64-bit value that JS rounds); `sql` is it as a double. */
  stored?: Sql;
  /** For a condition: other ways to find the profiles it holds for. */
  plans?: ConditionPlans;
  /** For a condition: what it tests, so a sibling under `and` / `or` testing the same value merges with it. */
  shape?: ConditionShape;
  /** For a number: what it is computed from, so comparing it with a constant takes a cheaper form. */
  origin?: NumberOrigin;
  /** For a value read from a document as it is: where, so an equality can add a prefilter (equality.ts). */
  read?: DocumentRead;
  /** For a condition: it holds only where this document contains one of these JSON texts (equality.ts). */
  implies?: Containment;
  /** For a count: the containment its items being some implies, if known (equality.ts). */
  someItem?: SomeItem;
}

/**
 * `documentOf(item)` contains (`@>`) one of `jsons`, objects written as JSON text; `exact`
 * when the condition holds exactly then (an equality with constants, or an `or` of them).
 */
export interface Containment {
  item: ItemScope;
  jsons: string[];
  exact: boolean;
}

/** A containment test that some item of an array implies; `exact` when it is equivalent to it. */
export interface SomeItem {
  test: Sql;
  exact: boolean;
}

/** Where a value was read: the document of `item` at `path` (at least one step), not wrapped. */
export interface DocumentRead {
  item: ItemScope;
  path: readonly string[];
}

/**
 * Other ways to run a condition; each selects exactly the profiles `sql` holds for. Kept
 * through `and`, `or` and `not` (to-sql.ts, sets.ts), used where the statement is built.
 */
export interface ConditionPlans {
  /**
   * The condition as a direct conjunct of the statement's outermost WHERE (where NULL already
   * is false), when that differs from `sql`: a single-table EXISTS left open to SQLite's
   * EXISTS-to-join rewrite (see `existsSql`).
   */
  topLevel?: Sql;
  /** The profiles it holds / fails for as uncorrelated id queries (sets.ts). */
  idSets?: IdSets;
  /** A set of ids to start from, with conditions on `p.id` only (sets.ts). */
  driven?: DrivenIds;
}

/** What a condition compares; two shapes on the same subject become one test. */
export interface ConditionShape {
  /** `subject op bound`, a comparison of a computed number with a constant: see to-sql.ts mergeComparisons. */
  compared?: { subject: Sql; op: string; bound: Sql };
  /** `lo <= subject <= hi` on a datetime (inclusive ms, null sides open): see time.ts mergeRanges. */
  range?: { subject: ScalarValue; lo: number | null; hi: number | null };
}

/** What a number is computed from; `value op constant` is then rewritten rather than computed per profile. */
export interface NumberOrigin {
  /** An aggregate over the profile's events: the comparison becomes a grouped sub-query (hoist.ts). */
  eventAggregate?: EventAggregate;
  /** `age(t)`: t, so the comparison becomes a range on t (time.ts compareAge). */
  ageOf?: ScalarValue;
}

/**
 * Each an uncorrelated query of distinct ids in one column `id`: `ids` the profiles for which
 * the condition holds, `excluded` those for which it does not (false or missing).
 */
export interface IdSets {
  ids?: Sql;
  excluded?: Sql;
  /**
   * The condition itself is a cheap correlated probe and the sets a pass over many events:
   * as a filter of a smaller set, the probe is the better plan.
   */
  probe?: boolean;
  /** When the condition is decided by one grouped pass over some events: conditions on the same events merge into it. */
  group?: EventGroup;
}

/**
 * A condition decided by each profile's group of some events (`GROUP BY profile_id`): for a
 * profile with such events it holds when `having` does, for one without when `empty` is true.
 */
export interface EventGroup {
  /** The events read, with the alias left out: groups with equal keys read the same events. */
  key: string;
  /** The events' alias in `having`. */
  alias: string;
  having: Sql;
  empty: boolean;
  /** The ids of the profiles whose group passes `test`. */
  query: (test: Sql) => Sql;
  /** When `having` is an exact-sum test (hoist.ts): its parts, so tests of the same sum share one recount. */
  sum?: SumTest;
}

/**
 * `CASE WHEN near THEN (SELECT onExact FROM exact) ELSE decided END`: a test decided by the
 * exact decimal sum of a group unless it is `near` the bound, where `onExact` tests the PQL sum
 * `q.x` that `exact` (a FROM item named q) computes for the group's profile.
 */
export interface SumTest {
  near: Sql;
  decided: Sql;
  onExact: Sql;
  exact: Sql;
}

export function sumTestSql(t: SumTest): Sql {
  return sql`CASE WHEN ${t.near} THEN (SELECT ${t.onExact} FROM ${t.exact}) ELSE ${t.decided} END`;
}

/** A start for a statement: a set of ids, and conditions on them that read only `p.id`. */
export interface DrivenIds {
  ids: Sql;
  filters: Sql[];
}

/** The alias of the profile row (`profiles AS p`) in every statement the compiler writes. */
export const PROFILE_ALIAS = 'p';

/**
 * Where an item's fields live. The profile is `p` (PROFILE_ALIAS); an event row has real
 * columns `ts` and `event_type` and the rest in `payload`; an element of a JSON array (or a
 * derived table of them) is the `value` column, a JSONB object or a scalar.
 */
export type ItemScope =
  | { kind: 'profile' }
  | { kind: 'event'; alias: string }
  /** `typed`: `value` already holds SQL values (a derived table), not JSON elements. */
  | { kind: 'json'; alias: string; typed?: boolean };

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
  /**
   * For the values of a path over the profile's events (`xEvent[…].channel`), and their
   * `distinct()`: the events and the per-event value, so `count()` of them can be one grouped
   * pass (`count(DISTINCT value)`, hoist.ts). Valid only while `from` and `where` are the very
   * ones it was made with: a collection derived by spreading this one and changing either is
   * not these values any more.
   */
  eventValues?: { events: CollectionValue; value: Sql; distinct: boolean; from: Sql; where: Sql[] };
  /**
   * For the elements of a document array: where the array was read, so `includes(constant)`
   * can add a prefilter (containment.ts). Valid, as `eventValues`, only while `from` and
   * `where` are the very ones it was made with.
   */
  read?: DocumentRead & { from: Sql; where: Sql[] };
  /**
   * For items of a document array filtered by a condition that implies containment: what
   * having one such item implies of the array's own document (equality.ts). Valid, as
   * `eventValues`, only while `from` and `where` are the very ones it was made with.
   */
  someItem?: SomeItem & { from: Sql; where: Sql[] };
}

export type CompiledValue = ScalarValue | ObjectValue | CollectionValue;

export interface EventAggregate {
  fn: AggregateFn;
  source: CollectionValue;
  /** The per-event value (null for count, except a count of distinct values). */
  input: Sql | null;
  /** `count` of the distinct present values of `input` (`xEvent.channel.distinct().count()`). */
  distinct?: boolean;
  /**
   * For a sum or average of a number read from the events' documents: that number as an exact
   * decimal (NULL when it is not a number), where the dialect has one (hoist.ts exactSumTest).
   */
  decimal?: Sql;
}

const BOOLEAN_TYPE: PqlType = { kind: 'boolean' };
export const NUMBER_TYPE: PqlType = { kind: 'number' };
export const STRING_TYPE: PqlType = { kind: 'string' };
export const DATETIME_TYPE: PqlType = { kind: 'datetime' };
export const ANY_TYPE: PqlType = { kind: 'any' };

/** A condition (NULL means false). */
export function predicate(s: Sql, nullable: boolean): ScalarValue {
  return { kind: 'scalar', sql: s, type: BOOLEAN_TYPE, nullable, predicate: true };
}

export function constantPredicate(value: boolean): ScalarValue {
  return { ...predicate(value ? trueSql() : falseSql(), false), constant: value };
}

/** The condition `EXISTS (sub)`; `singleTable` when `sub` reads one table (then it may be a top-level join). */
export function existsPredicate(sub: Sql, singleTable: boolean): ScalarValue {
  const v = predicate(existsSql(sub), false);
  return singleTable ? { ...v, plans: { topLevel: sql`EXISTS (${sub})` } } : v;
}

/** A boolean value read as a condition: a missing boolean field is false. */
export function asCondition(v: ScalarValue): ScalarValue {
  return v.predicate ? v : { ...v, predicate: true };
}

/** The SQL of a value used as a value: a condition's NULL becomes 0. */
export function valueSql(v: ScalarValue): Sql {
  return v.predicate && v.nullable ? dialect().orFalse(v.sql) : v.sql;
}

/** The SQL of a condition, for WHERE / AND / OR / CASE WHEN, where NULL already acts as false. */
export function conditionSql(v: ScalarValue): Sql {
  return v.sql;
}

/** The SQL of a condition that must be exactly 1 or 0. */
export function exactConditionSql(v: ScalarValue): Sql {
  return v.nullable ? dialect().orFalse(v.sql) : v.sql;
}

/** `NOT c`, exact even when c is NULL (missing flips to true). */
export function notSql(v: ScalarValue): Sql {
  return v.nullable ? notKnown(v.sql) : sql`NOT (${v.sql})`;
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
