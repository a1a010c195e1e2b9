/**
 * `occurs` and the datetime methods in SQL. A window whose references are constant (time
 * words, date literals) is computed once by runtime.occursBounds and bound, so an event
 * condition is `e.ts BETWEEN ? AND ?` on the index. A window relative to a per-row instant (a
 * path, a CHAIN step's time) is plain addition when the runtime's bounds are a fixed offset
 * from the reference; anything calendar-shaped runs runtime.occursMatches per row
 * (`pql_occurs`).
 */

import type { CompareOp, OccursTail, TimeUnit } from '../language/ast.js';
import { tailChildren } from '../language/visitor.js';
import {
  ageInYears,
  getDayOfMonth,
  getMonth,
  getYear,
  isDayValuedRef,
  MS_PER_DAY,
  type OccursBounds,
  occursBounds,
  occursHolds,
  occursShapeOf,
  toInstant,
} from '../runtime/index.js';
import { asMs, type CompileContext, type Env, isoBound } from './context.js';
import { dialect } from './dialect.js';
import { param, type Sql, sameParams, sql } from './fragment.js';
import type { OccursSpec } from './sql-functions.js';
import { constantPredicate, NUMBER_TYPE, predicate, type ScalarValue, valueSql } from './values.js';

const FIXED_UNITS: ReadonlySet<TimeUnit> = new Set(['millisecond', 'second', 'minute', 'hour', 'day', 'week']);

/**
 * Inclusive whole-millisecond bounds. Every instant PQL sees is a whole number of ms (event
 * times, ISO text with three decimals, date literals), so `t > 10.5` is `t >= 11` and a
 * half-open window `[lo, hi)` is `BETWEEN lo AND hi - 1`: one comparison per side, and the
 * subject is evaluated once.
 */
function inclusive(b: OccursBounds): { lo: number | null; hi: number | null } {
  const lo = b.lo === null ? null : b.loInclusive ? Math.ceil(b.lo) : Math.floor(b.lo) + 1;
  const hi = b.hi === null ? null : b.hiInclusive ? Math.floor(b.hi) : Math.ceil(b.hi) - 1;
  return { lo, hi };
}

/** `t` within constant bounds, in t's representation (ISO text compares as time). */
function windowPredicate(t: ScalarValue, bounds: OccursBounds | null): ScalarValue {
  if (bounds === null) return constantPredicate(false);
  if (t.constant !== undefined) {
    return constantPredicate(occursHolds(toInstant(t.constant ?? undefined) ?? null, bounds));
  }
  const { lo, hi } = inclusive(bounds);
  const inside = rangePredicate(t, lo, hi);
  // NOT of a NULL (missing t) stays NULL, i.e. false: `!=` also needs a present t.
  return bounds.negate ? predicate(sql`NOT (${inside.sql})`, t.nullable) : inside;
}

/** `lo <= t <= hi` (inclusive ms, a null side open), remembered as a range so a conjunction on the same t can merge. */
function rangePredicate(t: ScalarValue, lo: number | null, hi: number | null): ScalarValue {
  const bound = (ms: number): Sql => param(t.rep === 'iso' ? isoBound(ms) : ms);
  const x = t.rep === 'iso' ? dialect().ordered(valueSql(t)) : valueSql(t);
  let inside: Sql;
  if (lo !== null && hi !== null) inside = sql`${x} BETWEEN ${bound(lo)} AND ${bound(hi)}`;
  else if (lo !== null) inside = sql`${x} >= ${bound(lo)}`;
  else if (hi !== null) inside = sql`${x} <= ${bound(hi)}`;
  else inside = sql`${x} IS NOT NULL`;
  return { ...predicate(inside, t.nullable), shape: { range: { subject: t, lo, hi } } };
}

/**
 * `a and b` for two ranges on the same datetime (`age(d) >= 30 and age(d) < 45`): one range,
 * so the subject (a JSON extraction per row) is read once. Undefined when they are not that.
 */
export function mergeRanges(a: ScalarValue, b: ScalarValue): ScalarValue | undefined {
  const ra = a.shape?.range;
  const rb = b.shape?.range;
  if (!ra || !rb || ra.subject.rep !== rb.subject.rep) return undefined;
  const x = valueSql(ra.subject);
  const y = valueSql(rb.subject);
  if (x.text !== y.text || !sameParams(x.params, y.params)) {
    return undefined;
  }
  const max = (p: number | null, q: number | null) => (p === null ? q : q === null ? p : Math.max(p, q));
  const min = (p: number | null, q: number | null) => (p === null ? q : q === null ? p : Math.min(p, q));
  return rangePredicate(ra.subject, max(ra.lo, rb.lo), min(ra.hi, rb.hi));
}

/**
 * For a tail whose window is its (single, per-row, not day-valued) reference plus fixed
 * offsets — `[op] N units before/after R` with a fixed unit and op other than `=`/`!=`, or
 * `before/after R` — the inclusive offsets: t holds when `R + lo <= t <= R + hi` (a null side
 * is open). They are taken from runtime.occursBounds at reference 0 rather than restating its
 * table. Undefined for every other tail.
 */
export function fixedOffsets(tail: OccursTail, now: number): { lo: number | null; hi: number | null } | undefined {
  const refs = tailChildren(tail);
  if (refs.length !== 1 || isDayValuedRef(refs[0]!)) return undefined;
  const shape = occursShapeOf(tail);
  const offsetShape =
    (shape.form === 'relative' && FIXED_UNITS.has(shape.unit) && shape.op !== '=' && shape.op !== '!=') ||
    shape.form === 'beforeAfter';
  if (!offsetShape) return undefined;
  const zero = occursBounds(shape, 0, false, now);
  if (zero === null || zero.negate) return undefined;
  return inclusive(zero);
}

/** `subject occurs tail`, false when the subject or a needed reference is missing. */
export function compileOccurs(ctx: CompileContext, subject: ScalarValue, tail: OccursTail, env: Env): ScalarValue {
  if (subject.constant === null) return constantPredicate(false);
  const shape = occursShapeOf(tail);
  const refNodes = tailChildren(tail);
  const refs = refNodes.map((n) => ctx.scalar(n, env));
  const refDay = refNodes[0] !== undefined && isDayValuedRef(refNodes[0]);
  const toDay = refNodes[1] !== undefined && isDayValuedRef(refNodes[1]);
  const instantOf = (v: ScalarValue | undefined) =>
    v === undefined ? null : (toInstant(v.constant ?? undefined) ?? null);

  if (refs.every((r) => r.constant !== undefined)) {
    return windowPredicate(
      subject,
      occursBounds(shape, instantOf(refs[0]), refDay, ctx.now, instantOf(refs[1]), toDay),
    );
  }

  const ref = refs[0]!;
  const offsets = fixedOffsets(tail, ctx.now);
  if (offsets !== undefined) {
    const { lo, hi } = offsets;
    const t = valueSql(asMs(subject));
    const r = valueSql(asMs(ref));
    const at = (offset: number): Sql => (offset === 0 ? r : sql`${r} + ${param(offset)}`);
    let s: Sql;
    if (lo !== null && hi !== null) s = sql`${t} BETWEEN ${at(lo)} AND ${at(hi)}`;
    else if (lo !== null) s = sql`${t} >= ${at(lo)}`;
    else s = sql`${t} <= ${at(hi!)}`;
    return predicate(s, true);
  }

  const spec: OccursSpec = { shape, refDay, toDay };
  // Every instant as epoch ms, the one form every dialect's occurs() takes.
  const arg = (v: ScalarValue | undefined): Sql => (v === undefined ? sql`NULL` : valueSql(asMs(v)));
  return predicate(
    dialect().occurs(valueSql(asMs(subject)), param(JSON.stringify(spec)), arg(refs[0]), arg(refs[1]), param(ctx.now)),
    false,
  );
}

/** `t.getYear()`, `getMonth()`, `getDayOfMonth()` (UTC). ISO text has them at fixed places. */
export function compileDatetimeMethod(name: 'getYear' | 'getMonth' | 'getDayOfMonth', t: ScalarValue): ScalarValue {
  const number = (s: Sql, nullable = true): ScalarValue => ({
    kind: 'scalar',
    sql: s,
    type: NUMBER_TYPE,
    nullable,
    predicate: false,
  });
  if (t.constant !== undefined) {
    const ms = toInstant(t.constant ?? undefined);
    if (ms === undefined) return { ...number(sql`NULL`), constant: null };
    const value = name === 'getYear' ? getYear(ms) : name === 'getMonth' ? getMonth(ms) : getDayOfMonth(ms);
    return { ...number(param(value), false), constant: value };
  }
  const x = valueSql(t);
  if (t.rep === 'iso') {
    const [start, length] = name === 'getYear' ? [1, 4] : name === 'getMonth' ? [6, 2] : [9, 2];
    return number(sql`CAST(substr(${x}, ${String(start)}, ${String(length)}) AS INTEGER)`);
  }
  return number(dialect().datePart(name === 'getYear' ? 'year' : name === 'getMonth' ? 'month' : 'day', x));
}

const MAX_AGE_YEARS = 200_000;

/**
 * The latest instant t with `age(t) >= years` at `now`. runtime.ageInYears is non-increasing
 * in t (adding calendar years clamps Feb 29 but never reorders), so {t : age(t) >= years} is
 * everything up to one instant, found by binary search over milliseconds with the runtime's
 * own function: Feb 29 birthdays come out exactly as the JS engine counts them.
 */
export function latestWithAge(now: number, years: number): number {
  if (years <= 0) return now;
  let lo = now - (years + 2) * 366 * MS_PER_DAY;
  let hi = now + 1;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const age = ageInYears(mid, now);
    if (age !== undefined && age >= years) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * `age(t) op c` as a range on t (no per-row function call): age is a whole number of years,
 * missing when t is missing or after now, so each comparison is `t <= latestWithAge(k)` or
 * its complement among present ages (t <= now).
 */
export function compareAge(op: CompareOp, t: ScalarValue, c: number, now: number): ScalarValue {
  const tooOld = (k: number) => k > MAX_AGE_YEARS;
  // age >= k
  const atLeast = (k: number): Bounds => (tooOld(k) ? null : { hi: latestWithAge(now, k) });
  // present and age < k
  const below = (k: number): Bounds =>
    k <= 0 ? null : { lo: tooOld(k) ? undefined : latestWithAge(now, k) + 1, hi: now };
  let bounds: Bounds;
  let negate = false;
  switch (op) {
    case '>=':
      bounds = atLeast(Math.ceil(c));
      break;
    case '>':
      bounds = atLeast(Math.floor(c) + 1);
      break;
    case '<=':
      bounds = below(Math.floor(c) + 1);
      break;
    case '<':
      bounds = below(Math.ceil(c));
      break;
    case '=':
    case '!=': {
      if (!Number.isInteger(c) || c < 0 || tooOld(c)) {
        bounds = op === '=' ? null : { hi: now };
        break;
      }
      const lo = latestWithAge(now, c + 1) + 1;
      bounds = { lo, hi: latestWithAge(now, c) };
      negate = op === '!=';
      break;
    }
  }
  if (bounds === null) return constantPredicate(false);
  const inside = windowPredicate(t, {
    lo: bounds.lo ?? null,
    loInclusive: true,
    hi: bounds.hi,
    hiInclusive: true,
    negate: false,
  });
  if (!negate) return inside;
  // present (t <= now) and outside [lo, hi]
  const present = windowPredicate(t, { lo: null, loInclusive: true, hi: now, hiInclusive: true, negate: false });
  return predicate(sql`(${present.sql} AND NOT (${inside.sql}))`, t.nullable);
}

type Bounds = { lo?: number; hi: number } | null;
