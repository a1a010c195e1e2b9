/**
 * Time semantics shared by both engines (docs/pql-semantics.md "Time"): UTC calendar
 * arithmetic on epoch milliseconds, ISO-8601 parsing, and the `occurs` bounds table.
 *
 * Everything here is plain arithmetic on numbers (no `Date` objects on the hot path), so the
 * JS evaluator can call it per event and the SQL engine can register it as SQLite functions.
 * An invalid input yields `NaN` (numbers) or `undefined`; callers treat both as missing.
 */
import type { CompareOp, ExpressionNode, OccursTail, TimeUnit } from '../language/ast.js';

export const MS_PER_SECOND = 1000;
export const MS_PER_MINUTE = 60_000;
export const MS_PER_HOUR = 3_600_000;
export const MS_PER_DAY = 86_400_000;
export const MS_PER_WEEK = 604_800_000;

/** Fixed duration in ms of the units that are not calendar arithmetic. */
const FIXED_UNIT_MS: Readonly<Record<Exclude<TimeUnit, 'month' | 'year'>, number>> = {
  millisecond: 1,
  second: MS_PER_SECOND,
  minute: MS_PER_MINUTE,
  hour: MS_PER_HOUR,
  day: MS_PER_DAY,
  week: MS_PER_WEEK,
};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil); month 1–12.
// Done by hand because `Date.UTC` maps years 0–99 to 1900–1999.
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

interface Civil {
  year: number;
  month: number;
  day: number;
}

function civilFromDays(days: number): Civil {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Number of days in `month` (1–12) of `year`. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Start (00:00:00.000 UTC) of the day containing `ms`. */
export function dayStart(ms: number): number {
  return Math.floor(ms / MS_PER_DAY) * MS_PER_DAY;
}

/**
 * `ms + n units`. Fixed units add `n × duration` exactly; `month`/`year` are calendar
 * arithmetic that keeps the time of day and clamps the day to the target month's length
 * (Jan 31 + 1 month = Feb 28/29; Feb 29 + 1 year = Feb 28). A fractional month/year amount is
 * truncated toward zero.
 */
export function addUnits(ms: number, unit: TimeUnit, n: number): number {
  if (!Number.isFinite(ms) || !Number.isFinite(n)) return Number.NaN;
  if (unit !== 'month' && unit !== 'year') return ms + n * FIXED_UNIT_MS[unit];
  const months = Math.trunc(n) * (unit === 'year' ? 12 : 1);
  const days = Math.floor(ms / MS_PER_DAY);
  const timeOfDay = ms - days * MS_PER_DAY;
  const c = civilFromDays(days);
  const monthIndex = c.year * 12 + (c.month - 1) + months;
  const year = Math.floor(monthIndex / 12);
  const month = monthIndex - year * 12 + 1;
  const day = Math.min(c.day, daysInMonth(year, month));
  return daysFromCivil(year, month, day) * MS_PER_DAY + timeOfDay;
}

/** Start of the calendar period of `unit` containing `ms` (ISO weeks start on Monday). */
export function periodStart(ms: number, unit: TimeUnit): number {
  if (!Number.isFinite(ms)) return Number.NaN;
  switch (unit) {
    case 'millisecond':
      return Math.floor(ms);
    case 'second':
    case 'minute':
    case 'hour':
    case 'day': {
      const size = FIXED_UNIT_MS[unit];
      return Math.floor(ms / size) * size;
    }
    case 'week': {
      const days = Math.floor(ms / MS_PER_DAY);
      // 1970-01-01 was a Thursday: (days + 3) mod 7 is the days since Monday.
      const sinceMonday = (((days + 3) % 7) + 7) % 7;
      return (days - sinceMonday) * MS_PER_DAY;
    }
    case 'month': {
      const c = civilFromDays(Math.floor(ms / MS_PER_DAY));
      return daysFromCivil(c.year, c.month, 1) * MS_PER_DAY;
    }
    case 'year': {
      const c = civilFromDays(Math.floor(ms / MS_PER_DAY));
      return daysFromCivil(c.year, 1, 1) * MS_PER_DAY;
    }
  }
}

/** The calendar period `[start, end)` of `unit` containing `ms`. */
export function periodOf(ms: number, unit: TimeUnit): [start: number, end: number] {
  const start = periodStart(ms, unit);
  return [start, addUnits(start, unit, 1)];
}

/** `date(y, m, d)`: 00:00 UTC of that day; undefined unless y is 0–9999 and m/d name a real day. */
export function parseDate(year: number, month: number, day: number): number | undefined {
  if (!Number.isInteger(year) || !Number.isInteger(month) || !Number.isInteger(day)) return undefined;
  if (year < 0 || year > 9999 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return undefined;
  }
  return daysFromCivil(year, month, day) * MS_PER_DAY;
}

function digits(text: string, from: number, count: number): number {
  let value = 0;
  for (let i = from; i < from + count; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    value = value * 10 + c;
  }
  return value;
}

/**
 * Parses `YYYY-MM-DD` (that day's 00:00 UTC) or `YYYY-MM-DDTHH:MM[:SS[.fff…]]` followed by
 * `Z`, `±HH:MM` or nothing (UTC). Fractions beyond milliseconds are truncated. Anything else,
 * including impossible dates and times, is undefined. The canonical 24-character form
 * (`2026-11-28T09:30:00.000Z`) takes a fast path, since it is what documents store.
 */
export function parseIsoDatetime(text: string): number | undefined {
  const n = text.length;
  if (n < 10 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45) return undefined;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  const dayMs = daysFromCivil(year, month, day) * MS_PER_DAY;
  if (n === 10) return dayMs;
  const sep = text.charCodeAt(10);
  if ((sep !== 84 && sep !== 116) || n < 16 || text.charCodeAt(13) !== 58) return undefined;
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59) return undefined;
  let i = 16;
  let second = 0;
  let millis = 0;
  if (text.charCodeAt(i) === 58) {
    second = digits(text, i + 1, 2);
    if (second < 0 || second > 59) return undefined;
    i += 3;
    if (text.charCodeAt(i) === 46) {
      i++;
      const fracStart = i;
      while (i < n && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
      const fracLength = i - fracStart;
      if (fracLength === 0 || fracLength > 9) return undefined;
      millis = digits(text.slice(fracStart, Math.min(i, fracStart + 3)).padEnd(3, '0'), 0, 3);
    }
  }
  let offset = 0;
  if (i < n) {
    const zone = text.charCodeAt(i);
    if ((zone === 90 || zone === 122) && i + 1 === n) {
      // Z
    } else if ((zone === 43 || zone === 45) && i + 6 === n && text.charCodeAt(i + 3) === 58) {
      const oh = digits(text, i + 1, 2);
      const om = digits(text, i + 4, 2);
      if (oh < 0 || oh > 23 || om < 0 || om > 59) return undefined;
      offset = (zone === 43 ? 1 : -1) * (oh * MS_PER_HOUR + om * MS_PER_MINUTE);
    } else {
      return undefined;
    }
  }
  return dayMs + hour * MS_PER_HOUR + minute * MS_PER_MINUTE + second * MS_PER_SECOND + millis - offset;
}

/** The stored form `2026-11-28T09:30:00.000Z`. Throws RangeError outside `Date`'s range. */
export function toCanonicalIso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * A document value read at a datetime-typed path, as an instant: a finite number is already
 * epoch ms (the event `timestamp` column); a string is parsed by `parseIsoDatetime`;
 * anything else is missing.
 */
export function toInstant(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string') return parseIsoDatetime(value);
  return undefined;
}

export function getYear(ms: number): number {
  return civilFromDays(Math.floor(ms / MS_PER_DAY)).year;
}

/** 1–12. */
export function getMonth(ms: number): number {
  return civilFromDays(Math.floor(ms / MS_PER_DAY)).month;
}

export function getDayOfMonth(ms: number): number {
  return civilFromDays(Math.floor(ms / MS_PER_DAY)).day;
}

/**
 * `age(t)`: the largest n ≥ 0 with `addUnits(t, 'year', n) <= now` (so a Feb 29 birthday
 * counts on Feb 28 in common years). Undefined when t is after now (no such n).
 */
export function ageInYears(t: number, now: number): number | undefined {
  if (!Number.isFinite(t) || !Number.isFinite(now) || t > now) return undefined;
  let n = getYear(now) - getYear(t);
  if (addUnits(t, 'year', n) > now) n--;
  return n;
}

// ---------------------------------------------------------------------------------------------
// occurs

/**
 * The serialisable shape of an `occurs` tail without its reference expressions: what
 * `occursBounds` needs besides the reference instants. `from` is normalised to `after`.
 */
export type OccursShape =
  | { form: 'relative'; op: CompareOp; amount: number; unit: TimeUnit; direction: 'before' | 'after' }
  | { form: 'beforeAfter'; direction: 'before' | 'after' }
  | { form: 'on' }
  | { form: 'period'; which: 'this' | 'last' | 'next'; unit: TimeUnit }
  | { form: 'between' };

/**
 * `t` holds when `lo (<|<=) t (<|<=) hi` (a null side is unbounded), inverted when `negate`
 * (only `!= N u before/after R`). Plain data, so the SQL engine can bind the numbers.
 */
export interface OccursBounds {
  lo: number | null;
  loInclusive: boolean;
  hi: number | null;
  hiInclusive: boolean;
  negate: boolean;
}

/** The shape of a parsed tail; the caller evaluates `tail.ref` / `tail.from` / `tail.to` itself. */
export function occursShapeOf(tail: OccursTail): OccursShape {
  switch (tail.form) {
    case 'relative':
      return {
        form: 'relative',
        op: tail.op,
        amount: tail.amount,
        unit: tail.unit,
        direction: tail.direction === 'before' ? 'before' : 'after',
      };
    case 'beforeAfter':
      return { form: 'beforeAfter', direction: tail.direction };
    case 'on':
      return { form: 'on' };
    case 'period':
      return { form: 'period', which: tail.which, unit: tail.unit };
    case 'between':
      return { form: 'between' };
  }
}

/**
 * Whether a reference expression is day-valued (its whole day counts in `after R`,
 * `between A and B`): decided syntactically, so both engines agree without data flow —
 * `today`, `yesterday`, `tomorrow` and a `date(...)` call are; `now`, `datetime(...)`, paths,
 * variables and chain labels are not.
 */
export function isDayValuedRef(node: ExpressionNode): boolean {
  if (node.kind === 'TimeWord') return node.word !== 'now';
  return node.kind === 'Call' && node.name === 'date';
}

function range(lo: number, hi: number, negate = false): OccursBounds {
  return { lo, loInclusive: true, hi, hiInclusive: false, negate };
}

function bounded(lo: number | null, loInclusive: boolean, hi: number | null, hiInclusive: boolean): OccursBounds {
  return { lo, loInclusive, hi, hiInclusive, negate: false };
}

function finite(b: OccursBounds): OccursBounds | null {
  if (b.lo !== null && !Number.isFinite(b.lo)) return null;
  if (b.hi !== null && !Number.isFinite(b.hi)) return null;
  return b;
}

const usable = (ms: number | null | undefined): ms is number => typeof ms === 'number' && Number.isFinite(ms);

/**
 * The window of an `occurs` tail (the table in docs/pql-semantics.md). `refMs` is R (for
 * `between`, A; `toMs` is B), `refIsDayValued` says whether R is a date (see
 * `isDayValuedRef`). Returns null when a needed reference is missing or a bound is not a
 * finite number: the `occurs` is then false for every t.
 */
export function occursBounds(
  shape: OccursShape,
  refMs: number | null | undefined,
  refIsDayValued: boolean,
  nowMs: number,
  toMs?: number | null,
  toIsDayValued = false,
): OccursBounds | null {
  if (shape.form === 'period') {
    if (!usable(nowMs)) return null;
    const [start, end] = periodOf(nowMs, shape.unit);
    if (shape.which === 'this') return finite(range(start, end));
    const [s, e] = periodOf(addUnits(start, shape.unit, shape.which === 'last' ? -1 : 1), shape.unit);
    return finite(range(s, e));
  }
  if (!usable(refMs)) return null;
  const r = refIsDayValued ? dayStart(refMs) : refMs;
  switch (shape.form) {
    case 'on': {
      const start = dayStart(r);
      return finite(range(start, start + MS_PER_DAY));
    }
    case 'beforeAfter':
      if (shape.direction === 'before') return bounded(null, false, r, false);
      return refIsDayValued ? bounded(r + MS_PER_DAY, true, null, false) : bounded(r, false, null, false);
    case 'between': {
      if (!usable(toMs)) return null;
      if (toIsDayValued) return finite(bounded(r, true, dayStart(toMs) + MS_PER_DAY, false));
      return bounded(r, true, toMs, true);
    }
    case 'relative': {
      const before = shape.direction === 'before';
      const shifted = addUnits(r, shape.unit, before ? -shape.amount : shape.amount);
      if (!Number.isFinite(shifted)) return null;
      switch (shape.op) {
        case '=':
        case '!=': {
          const [start, end] = periodOf(shifted, shape.unit);
          return finite(range(start, end, shape.op === '!='));
        }
        case '<=':
          return before ? bounded(shifted, true, r, true) : bounded(r, true, shifted, true);
        case '<':
          return before ? bounded(shifted, false, r, true) : bounded(r, true, shifted, false);
        case '>=':
          return before ? bounded(null, false, shifted, true) : bounded(shifted, true, null, false);
        case '>':
          return before ? bounded(null, false, shifted, false) : bounded(shifted, false, null, false);
      }
    }
  }
}

/** Whether instant `t` is in the window; false for a missing t or a null window. */
export function occursHolds(t: number | null | undefined, bounds: OccursBounds | null): boolean {
  if (bounds === null || typeof t !== 'number' || Number.isNaN(t)) return false;
  const inside =
    (bounds.lo === null || (bounds.loInclusive ? t >= bounds.lo : t > bounds.lo)) &&
    (bounds.hi === null || (bounds.hiInclusive ? t <= bounds.hi : t < bounds.hi));
  return bounds.negate ? !inside : inside;
}

/** `occursBounds` and `occursHolds` in one call: what a per-row SQLite function runs. */
export function occursMatches(
  t: number | null | undefined,
  shape: OccursShape,
  refMs: number | null | undefined,
  refIsDayValued: boolean,
  nowMs: number,
  toMs?: number | null,
  toIsDayValued = false,
): boolean {
  if (typeof t !== 'number' || Number.isNaN(t)) return false;
  return occursHolds(t, occursBounds(shape, refMs, refIsDayValued, nowMs, toMs, toIsDayValued));
}
