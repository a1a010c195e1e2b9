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
import { type DocumentRead, predicate, type ScalarValue } from './values.js';

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
  const prefilter = anyContains(
    read,
    constants.map((c) => JSON.stringify(c)),
  );
  return prefilter === undefined && test === undefined ? undefined : withPrefilter(exact, prefilter);
}

/** `doc @> {path: [v]}` for `array.includes(v)` on a profile document's array (see the top). */
export function includesPrefilter(read: DocumentRead | undefined, value: ScalarValue): Sql | undefined {
  if (read === undefined || !prefilterable(value)) return undefined;
  return anyContains(read, [`[${JSON.stringify(value.constant)}]`]);
}

function anyContains(read: DocumentRead, jsonValues: readonly string[]): Sql | undefined {
  // Only the profile attributes are indexed; elsewhere the extra test measured no faster.
  if (read.item.kind !== 'profile' || read.path.length === 0 || !read.path.every(storable)) return undefined;
  const tests: Sql[] = [];
  for (const value of jsonValues) {
    const json = read.path.reduceRight((inner, key) => `{${JSON.stringify(key)}: ${inner}}`, value);
    const test = dialect().contains(documentOf(read.item), json);
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
