/**
 * Containment prefilters: `field = "x"`, `field in ["x", "y"]` and `array.includes("x")` on a
 * document path with string or boolean constants, as `doc @> '{"a": {"b": "x"}}'` ahead of the
 * exact test. On PostgreSQL the profile attributes' GIN index (`jsonb_path_ops`) answers
 * containment, so the exact test runs only on the candidates it returns.
 *
 * The prefilter never drops a profile the exact test keeps: whenever the JS evaluator finds the
 * string or boolean `v` at path a.b (every step an object, docs/pql-semantics.md: a step through
 * an array is missing), the document contains `{"a": {"b": v}}`. The reverse holds too for
 * strings and booleans (jsonb compares them exactly, and containment follows objects only, never
 * into an array on the path), but the exact test stays, so the condition is the one it was.
 * Numbers get none: jsonb compares them as decimals (1.00000000000000001 ≠ 1) where JS compares
 * the doubles they read as (equal), so containment could drop a profile the exact test keeps.
 */
import { documentOf } from './context.js';
import { dialect } from './dialect.js';
import { type Sql, sql } from './fragment.js';
import { type DocumentRead, predicate, type ScalarValue } from './values.js';

/**
 * `(doc @> {path: v1} OR doc @> {path: v2} …)` for a read of the profile document compared
 * for equality with `values`, or undefined when there is no exact prefilter (another document,
 * a constant that is not a string or boolean, or a dialect without containment).
 */
export function equalityPrefilter(read: DocumentRead | undefined, values: readonly ScalarValue[]): Sql | undefined {
  if (read === undefined || values.length === 0) return undefined;
  const constants: (string | boolean)[] = [];
  for (const v of values) {
    if (!prefilterable(v)) return undefined;
    constants.push(v.constant as string | boolean);
  }
  return anyContains(
    read,
    constants.map((c) => JSON.stringify(c)),
  );
}

/** `doc @> {path: [v]}` for `array.includes(v)` on a profile document's array, as equalityPrefilter. */
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
