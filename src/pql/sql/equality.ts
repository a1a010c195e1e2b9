/**
 * A document field compared for equality with string or boolean constants (`field = "x"`,
 * `field in ["x", "y"]`, and `array.includes("x")`), in the forms the dialect makes cheap.
 *
 * The exact test: on PostgreSQL the field's JSON text (`doc -> 'a' ->> 'b' = 'x'`, one read
 * of the path, no type test) when no JSON value other than the string "x" has that text, or
 * jsonb equality otherwise (`doc -> 'a' -> 'b' = '"x"'`; booleans too); elsewhere the typed read.
 *
 * The prefilter, ahead of it: containment, `doc @> '{"a": {"b": "x"}}'`, which the GIN index
 * on the profile attributes (`jsonb_path_ops`) answers, so the exact test runs only on the
 * candidates it returns. It never drops a profile the exact test keeps: whenever the JS
 * evaluator finds the string or boolean `v` at path a.b (every step an object,
 * docs/pql-semantics.md: a step through an array is missing), the document contains
 * `{"a": {"b": v}}`. The reverse holds too for strings and booleans (jsonb compares them
 * exactly, and containment follows objects only, never into an array on the path), but the
 * exact test stays, so the condition is the one it was. Numbers get neither: jsonb compares
 * them as decimals (1.00000000000000001 ≠ 1) where JS compares the doubles they read as (equal).
 */
import { documentOf } from './context.js';
import { dialect } from './dialect.js';
import { type Sql, sql } from './fragment.js';
import {
  type CollectionValue,
  type Containment,
  type DocumentRead,
  type ItemScope,
  predicate,
  type ScalarValue,
  type SomeItem,
} from './values.js';

/**
 * `subject = v1 or subject = v2 …` where `typed` is that test on the typed read: the cheaper
 * exact test and the prefilter when `subject` is a document read and `values` constants of its
 * type (string or boolean); undefined when neither applies.
 */
export function documentEquality(
  typed: ScalarValue,
  subject: ScalarValue,
  values: readonly ScalarValue[],
): ScalarValue | undefined {
  const read = subject.read;
  const kind = subject.type.kind;
  if (read === undefined || values.length === 0 || (kind !== 'string' && kind !== 'boolean')) return undefined;
  const constants: (string | boolean)[] = [];
  for (const v of values) {
    if (v.type.kind !== kind || !prefilterable(v)) return undefined;
    constants.push(v.constant as string | boolean);
  }
  const test = read.path.every(storable)
    ? dialect().jsonEquals(documentOf(read.item), read.path, constants)
    : undefined;
  const exact = test ? predicate(test, true) : typed;
  const jsons = constants.map((c) => JSON.stringify(c));
  const prefilter = anyContains(read, jsons);
  const implies = read.path.every(storable)
    ? { item: read.item, jsons: jsons.map((j) => nest(read.path, j)), exact: true }
    : undefined;
  if (prefilter === undefined && test === undefined && implies === undefined) return undefined;
  const value = withPrefilter(exact, prefilter);
  return implies ? { ...value, implies } : value;
}

/** `{"a": {"b": json}}` for the path a.b. */
function nest(path: readonly string[], json: string): string {
  return path.reduceRight((inner, key) => `{${JSON.stringify(key)}: ${inner}}`, json);
}

/** What `a and b` / `a or b` implies, from what each side implies. */
export function impliedBy(a: ScalarValue, b: ScalarValue, and: boolean): Containment | undefined {
  const [x, y] = [a.implies, b.implies];
  if (and) {
    const either = x ?? y;
    return either && { ...either, exact: false };
  }
  if (!x || !y || !sameItem(x.item, y.item)) return undefined;
  return { item: x.item, jsons: [...x.jsons, ...y.jsons], exact: x.exact && y.exact };
}

function sameItem(a: ItemScope, b: ItemScope): boolean {
  return a.kind === 'profile' ? b.kind === 'profile' : b.kind !== 'profile' && a.alias === b.alias;
}

/**
 * For `cond` on the items of the document array `c`: the containment that some item holding
 * for it implies of the array's own document (`payload @> {"items": [{"category": "shoes"}]}`
 * when cond implies the item contains `{"category": "shoes"}`: an array contains an array when
 * each of the latter's elements is contained in one of its own), or undefined.
 */
export function someItemContainment(c: CollectionValue, cond: ScalarValue): SomeItem | undefined {
  const array = c.read && c.read.from === c.from && c.read.where === c.where ? c.read : undefined;
  const implied = cond.implies;
  if (!array || !implied || c.item.kind !== 'json' || !sameItem(implied.item, c.item)) return undefined;
  const test = anyContains(
    array,
    implied.jsons.map((j) => `[${j}]`),
    true,
  );
  // Exact when cond is exactly the item's containment: some item holds ⟺ the array contains it.
  return test && { test, exact: implied.exact };
}

/** The containment a filtered collection carries for its items being some, when still valid. */
export function someItemOf(c: CollectionValue): SomeItem | undefined {
  const s = c.someItem;
  return s && s.from === c.from && s.where === c.where ? { test: s.test, exact: s.exact } : undefined;
}

/**
 * "Some item": `exact` when an exact containment replaces it, else it goes first; the
 * containment may be NULL (no array at the path), which is false here.
 */
export function withSomeItem(exact: ScalarValue, some: SomeItem | undefined): ScalarValue {
  if (some === undefined) return exact;
  if (some.exact) return predicate(some.test, true);
  return withPrefilter(exact, some.test);
}

/** `doc @> {path: [v]}` for `array.includes(v)` on a profile document's array (see the top). */
export function includesPrefilter(read: DocumentRead | undefined, value: ScalarValue): Sql | undefined {
  if (read === undefined || !prefilterable(value)) return undefined;
  return anyContains(read, [`[${JSON.stringify(value.constant)}]`]);
}

/**
 * `doc @> {path: v1} OR …`. Only the profile attributes are indexed; on other documents a
 * field's equality measured no faster with it, but a test of an array's items (`anyItem`),
 * a sub-query per row, does: there containment rules out most rows first.
 */
function anyContains(read: DocumentRead, jsonValues: readonly string[], anyItem = false): Sql | undefined {
  if (!(read.item.kind === 'profile' || (anyItem && read.item.kind === 'event'))) return undefined;
  if (read.path.length === 0 || !read.path.every(storable)) return undefined;
  const tests: Sql[] = [];
  for (const value of jsonValues) {
    const test = dialect().contains(documentOf(read.item), read.path, value, read.item.kind === 'profile');
    if (test === undefined) return undefined;
    tests.push(test);
  }
  return tests.length === 1 ? tests[0] : sql`(${tests.reduce((a, b) => sql`${a} OR ${b}`)})`;
}

/** A constant string (that jsonb can hold) or boolean. */
function prefilterable(v: ScalarValue): boolean {
  if (typeof v.constant === 'boolean') return v.type.kind === 'boolean';
  return typeof v.constant === 'string' && v.type.kind === 'string' && storable(v.constant);
}

/**
 * Text jsonb accepts: no U+0000 and no unpaired surrogate (JSON.stringify writes one as an
 * escape that jsonb rejects with an error, where the exact test simply finds no match).
 */
function storable(s: string): boolean {
  return !s.includes('\0') && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** The condition `exact`, tested after `prefilter` when there is one (the same profiles either way). */
export function withPrefilter(exact: ScalarValue, prefilter: Sql | undefined): ScalarValue {
  if (prefilter === undefined) return exact;
  const value = predicate(sql`(${prefilter} AND ${exact.sql})`, exact.nullable);
  if (!exact.plans) return value;
  const top = exact.plans.topLevel;
  return { ...value, plans: { ...exact.plans, ...(top ? { topLevel: sql`(${prefilter} AND ${top})` } : {}) } };
}
