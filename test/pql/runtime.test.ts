import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addUnits,
  ageInYears,
  arithmetic,
  codePointLength,
  compareCodePoints,
  compareOp,
  compareValues,
  dayStart,
  getDayOfMonth,
  getMonth,
  getYear,
  isDayValuedRef,
  isValidRegex,
  KbnAccumulator,
  kbnSum,
  likeMatches,
  lowerText,
  type OccursShape,
  occursBounds,
  occursHolds,
  occursMatches,
  parseDate,
  parseIsoDatetime,
  periodOf,
  periodStart,
  regexGroup,
  regexMatches,
  stringPredicate,
  toCanonicalIso,
  toInstant,
  upperText,
  valueIn,
  valueNotIn,
  valuesEqual,
} from '../../src/pql/runtime/index.js';

const iso = (text: string): number => {
  const ms = parseIsoDatetime(text);
  if (ms === undefined) throw new Error(`bad test datetime ${text}`);
  return ms;
};
const show = (ms: number | undefined | null) => (typeof ms === 'number' ? toCanonicalIso(ms) : ms);
const DAY = 86_400_000;

describe('calendar arithmetic', () => {
  it('adds a month to Jan 31 by clamping to the end of February', () => {
    expect(show(addUnits(iso('2023-01-31T10:00:00.000Z'), 'month', 1))).toBe('2023-02-28T10:00:00.000Z');
    expect(show(addUnits(iso('2024-01-31T10:00:00.000Z'), 'month', 1))).toBe('2024-02-29T10:00:00.000Z');
    expect(show(addUnits(iso('2024-03-31T00:00:00.000Z'), 'month', -1))).toBe('2024-02-29T00:00:00.000Z');
    expect(show(addUnits(iso('2024-05-31T00:00:00.000Z'), 'month', 1))).toBe('2024-06-30T00:00:00.000Z');
  });

  it('crosses year boundaries in both directions', () => {
    expect(show(addUnits(iso('2023-12-15T00:00:00.000Z'), 'month', 1))).toBe('2024-01-15T00:00:00.000Z');
    expect(show(addUnits(iso('2024-01-15T00:00:00.000Z'), 'month', -1))).toBe('2023-12-15T00:00:00.000Z');
    expect(show(addUnits(iso('2024-01-15T00:00:00.000Z'), 'month', -25))).toBe('2021-12-15T00:00:00.000Z');
  });

  it('adds a year to Feb 29 giving Feb 28, and four years giving Feb 29', () => {
    expect(show(addUnits(iso('2024-02-29T12:00:00.000Z'), 'year', 1))).toBe('2025-02-28T12:00:00.000Z');
    expect(show(addUnits(iso('2024-02-29T12:00:00.000Z'), 'year', 4))).toBe('2028-02-29T12:00:00.000Z');
    expect(show(addUnits(iso('2024-02-29T12:00:00.000Z'), 'year', -1))).toBe('2023-02-28T12:00:00.000Z');
    expect(show(addUnits(iso('2000-02-29T00:00:00.000Z'), 'year', 100))).toBe('2100-02-28T00:00:00.000Z');
  });

  it('treats the other units as fixed durations', () => {
    const t = iso('2024-03-10T12:00:00.000Z');
    expect(addUnits(t, 'millisecond', 5)).toBe(t + 5);
    expect(addUnits(t, 'second', 2)).toBe(t + 2000);
    expect(addUnits(t, 'minute', 2)).toBe(t + 120_000);
    expect(addUnits(t, 'hour', -3)).toBe(t - 3 * 3_600_000);
    expect(addUnits(t, 'day', 1.5)).toBe(t + 1.5 * DAY);
    expect(addUnits(t, 'week', 2)).toBe(t + 14 * DAY);
    expect(addUnits(Number.NaN, 'day', 1)).toBeNaN();
  });

  it('handles years before 100 without the Date.UTC two-digit-year trap', () => {
    expect(show(parseDate(50, 1, 1))).toBe('0050-01-01T00:00:00.000Z');
    expect(show(addUnits(parseDate(99, 12, 31)!, 'day', 1))).toBe('0100-01-01T00:00:00.000Z');
    expect(getYear(parseDate(5, 6, 7)!)).toBe(5);
  });

  it('agrees with Date for day/month/year decomposition (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_135_596_800_000, max: 253_402_300_799_999 }), (ms) => {
        const d = new Date(ms);
        expect(getYear(ms)).toBe(d.getUTCFullYear());
        expect(getMonth(ms)).toBe(d.getUTCMonth() + 1);
        expect(getDayOfMonth(ms)).toBe(d.getUTCDate());
        expect(parseIsoDatetime(d.toISOString())).toBe(ms);
      }),
    );
  });
});

describe('calendar periods', () => {
  it('starts ISO weeks on Monday, also across a year boundary', () => {
    // 2025-01-01 is a Wednesday; its week starts Monday 2024-12-30.
    expect(show(periodStart(iso('2025-01-01T08:00:00.000Z'), 'week'))).toBe('2024-12-30T00:00:00.000Z');
    // A Sunday belongs to the week that started the Monday before.
    expect(show(periodStart(iso('2024-03-17T23:59:59.999Z'), 'week'))).toBe('2024-03-11T00:00:00.000Z');
    expect(show(periodStart(iso('2024-03-18T00:00:00.000Z'), 'week'))).toBe('2024-03-18T00:00:00.000Z');
    // Before the epoch too.
    expect(show(periodStart(iso('1969-12-31T12:00:00.000Z'), 'week'))).toBe('1969-12-29T00:00:00.000Z');
  });

  it('gives [start, end) for every unit', () => {
    const t = iso('2024-02-29T13:45:30.250Z');
    const p = (u: Parameters<typeof periodOf>[1]) => periodOf(t, u).map((x) => toCanonicalIso(x));
    expect(p('millisecond')).toEqual(['2024-02-29T13:45:30.250Z', '2024-02-29T13:45:30.251Z']);
    expect(p('second')).toEqual(['2024-02-29T13:45:30.000Z', '2024-02-29T13:45:31.000Z']);
    expect(p('minute')).toEqual(['2024-02-29T13:45:00.000Z', '2024-02-29T13:46:00.000Z']);
    expect(p('hour')).toEqual(['2024-02-29T13:00:00.000Z', '2024-02-29T14:00:00.000Z']);
    expect(p('day')).toEqual(['2024-02-29T00:00:00.000Z', '2024-03-01T00:00:00.000Z']);
    expect(p('week')).toEqual(['2024-02-26T00:00:00.000Z', '2024-03-04T00:00:00.000Z']);
    expect(p('month')).toEqual(['2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z']);
    expect(p('year')).toEqual(['2024-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z']);
  });

  it('takes day starts before the epoch downwards', () => {
    expect(show(dayStart(iso('1969-07-20T20:17:00.000Z')))).toBe('1969-07-20T00:00:00.000Z');
  });
});

describe('dates and ISO text', () => {
  it('builds dates only for real days', () => {
    expect(show(parseDate(2024, 2, 29))).toBe('2024-02-29T00:00:00.000Z');
    expect(parseDate(2023, 2, 29)).toBeUndefined();
    expect(parseDate(2024, 13, 1)).toBeUndefined();
    expect(parseDate(2024, 4, 31)).toBeUndefined();
    expect(parseDate(2024, 1, 1.5)).toBeUndefined();
    expect(parseDate(10000, 1, 1)).toBeUndefined();
  });

  it('parses canonical ISO, plain dates, offsets and short forms', () => {
    expect(show(parseIsoDatetime('2026-11-28T09:30:00.000Z'))).toBe('2026-11-28T09:30:00.000Z');
    expect(show(parseIsoDatetime('2024-03-14'))).toBe('2024-03-14T00:00:00.000Z');
    expect(show(parseIsoDatetime('2024-03-14T10:00:00Z'))).toBe('2024-03-14T10:00:00.000Z');
    expect(show(parseIsoDatetime('2024-03-14T10:00Z'))).toBe('2024-03-14T10:00:00.000Z');
    expect(show(parseIsoDatetime('2024-03-14T10:00:00+01:30'))).toBe('2024-03-14T08:30:00.000Z');
    expect(show(parseIsoDatetime('2024-03-14T00:30:00-01:00'))).toBe('2024-03-14T01:30:00.000Z');
    expect(show(parseIsoDatetime('2024-03-14T10:00:00.1234567Z'))).toBe('2024-03-14T10:00:00.123Z');
    expect(show(parseIsoDatetime('2024-03-14T10:00:00.5Z'))).toBe('2024-03-14T10:00:00.500Z');
    expect(show(parseIsoDatetime('2024-03-14T10:00:00'))).toBe('2024-03-14T10:00:00.000Z');
  });

  it('rejects malformed or impossible text', () => {
    for (const bad of [
      '',
      '2024-3-14',
      '2024-02-30',
      '2024-03-14T24:00:00Z',
      '2024-03-14T10:60:00Z',
      '2024-03-14T10:00:60Z',
      '2024-03-14 10:00:00Z',
      '2024-03-14T10:00:00.Z',
      '2024-03-14T10:00:00ZZ',
      '2024-03-14T10:00:00+0100',
      'yesterday',
      '20240314',
    ]) {
      expect(parseIsoDatetime(bad), bad).toBeUndefined();
    }
  });

  it('reads document datetimes as instants: ms numbers and ISO strings, nothing else', () => {
    expect(toInstant(1_700_000_000_000)).toBe(1_700_000_000_000);
    expect(toInstant('2024-03-14')).toBe(iso('2024-03-14T00:00:00.000Z'));
    expect(toInstant('garbage')).toBeUndefined();
    expect(toInstant(true)).toBeUndefined();
    expect(toInstant(null)).toBeUndefined();
    expect(toInstant(Number.POSITIVE_INFINITY)).toBeUndefined();
  });
});

describe('age', () => {
  const now = iso('2024-06-15T12:00:00.000Z');
  it('counts whole years, turning over on the birthday itself', () => {
    expect(ageInYears(iso('1990-06-15T00:00:00.000Z'), now)).toBe(34);
    expect(ageInYears(iso('1990-06-16T00:00:00.000Z'), now)).toBe(33);
    expect(ageInYears(iso('1990-06-15T12:00:00.000Z'), now)).toBe(34);
    expect(ageInYears(iso('1990-06-15T12:00:00.001Z'), now)).toBe(33);
    expect(ageInYears(now, now)).toBe(0);
  });

  it('lets a Feb 29 birthday count on Feb 28 of common years', () => {
    const leapling = iso('2000-02-29T00:00:00.000Z');
    expect(ageInYears(leapling, iso('2023-02-27T23:59:59.999Z'))).toBe(22);
    expect(ageInYears(leapling, iso('2023-02-28T00:00:00.000Z'))).toBe(23);
    expect(ageInYears(leapling, iso('2024-02-28T23:59:59.999Z'))).toBe(23);
    expect(ageInYears(leapling, iso('2024-02-29T00:00:00.000Z'))).toBe(24);
  });

  it('is missing for a birth date in the future', () => {
    expect(ageInYears(now + 1, now)).toBeUndefined();
  });
});

describe('occurs windows', () => {
  const now = iso('2024-03-15T12:00:00.000Z');
  const today = dayStart(now);
  const holds = (t: number, shape: OccursShape, ref: number | null, refDay = false, to?: number, toDay = false) =>
    occursMatches(t, shape, ref, refDay, now, to, toDay);

  it('`<= 7 days before now` includes both ends and excludes 1 ms outside', () => {
    const shape: OccursShape = { form: 'relative', op: '<=', amount: 7, unit: 'day', direction: 'before' };
    expect(holds(now - 7 * DAY, shape, now)).toBe(true);
    expect(holds(now - 7 * DAY - 1, shape, now)).toBe(false);
    expect(holds(now, shape, now)).toBe(true);
    expect(holds(now + 1, shape, now)).toBe(false);
    expect(occursBounds(shape, now, false, now)).toEqual({
      lo: now - 7 * DAY,
      loInclusive: true,
      hi: now,
      hiInclusive: true,
      negate: false,
    });
  });

  it('`< 2 hours before now` excludes the far end', () => {
    const shape: OccursShape = { form: 'relative', op: '<', amount: 2, unit: 'hour', direction: 'before' };
    expect(holds(now - 2 * 3_600_000, shape, now)).toBe(false);
    expect(holds(now - 2 * 3_600_000 + 1, shape, now)).toBe(true);
    expect(holds(now, shape, now)).toBe(true);
  });

  it('`>= 30 days before now` and `> …` are open towards the past', () => {
    const ge: OccursShape = { form: 'relative', op: '>=', amount: 30, unit: 'day', direction: 'before' };
    const gt: OccursShape = { ...ge, op: '>' };
    expect(holds(now - 30 * DAY, ge, now)).toBe(true);
    expect(holds(now - 30 * DAY + 1, ge, now)).toBe(false);
    expect(holds(0, ge, now)).toBe(true);
    expect(holds(now - 30 * DAY, gt, now)).toBe(false);
    expect(holds(now - 30 * DAY - 1, gt, now)).toBe(true);
  });

  it('`= 3 days before today` is that whole calendar day, `!=` everything else', () => {
    const eq: OccursShape = { form: 'relative', op: '=', amount: 3, unit: 'day', direction: 'before' };
    expect(holds(iso('2024-03-12T00:00:00.000Z'), eq, today, true)).toBe(true);
    expect(holds(iso('2024-03-12T23:59:59.999Z'), eq, today, true)).toBe(true);
    expect(holds(iso('2024-03-13T00:00:00.000Z'), eq, today, true)).toBe(false);
    expect(holds(iso('2024-03-11T23:59:59.999Z'), eq, today, true)).toBe(false);
    const ne: OccursShape = { ...eq, op: '!=' };
    expect(holds(iso('2024-03-12T10:00:00.000Z'), ne, today, true)).toBe(false);
    expect(holds(iso('2024-03-13T10:00:00.000Z'), ne, today, true)).toBe(true);
  });

  it('`= 1 month before now` is the calendar month containing now - 1 month', () => {
    const shape: OccursShape = { form: 'relative', op: '=', amount: 1, unit: 'month', direction: 'before' };
    const b = occursBounds(shape, now, false, now)!;
    expect([show(b.lo), show(b.hi), b.hiInclusive]).toEqual([
      '2024-02-01T00:00:00.000Z',
      '2024-03-01T00:00:00.000Z',
      false,
    ]);
  });

  it('`after` forms: `<= 3 days after R` and `< …` include R, `>=`/`>` are open towards the future', () => {
    const r = iso('2024-01-10T00:00:00.000Z');
    const le: OccursShape = { form: 'relative', op: '<=', amount: 3, unit: 'day', direction: 'after' };
    expect(holds(r, le, r)).toBe(true);
    expect(holds(r - 1, le, r)).toBe(false);
    expect(holds(r + 3 * DAY, le, r)).toBe(true);
    expect(holds(r + 3 * DAY, { ...le, op: '<' }, r)).toBe(false);
    expect(holds(r + 3 * DAY, { ...le, op: '>=' }, r)).toBe(true);
    expect(holds(r + 3 * DAY, { ...le, op: '>' }, r)).toBe(false);
    expect(holds(r + 3 * DAY + 1, { ...le, op: '>' }, r)).toBe(true);
    expect(holds(iso('2024-01-13T05:00:00.000Z'), { ...le, op: '=' }, r)).toBe(true);
  });

  it('`before R` / `after R` are strict; after a date means after its whole day', () => {
    const r = iso('2024-01-10T00:00:00.000Z');
    const before: OccursShape = { form: 'beforeAfter', direction: 'before' };
    const after: OccursShape = { form: 'beforeAfter', direction: 'after' };
    expect(holds(r - 1, before, r)).toBe(true);
    expect(holds(r, before, r)).toBe(false);
    expect(holds(r + 1, after, r)).toBe(true);
    expect(holds(r, after, r)).toBe(false);
    expect(holds(r + 1, after, r, true)).toBe(false);
    expect(holds(r + DAY - 1, after, r, true)).toBe(false);
    expect(holds(r + DAY, after, r, true)).toBe(true);
  });

  it("`on R` is R's UTC day", () => {
    const shape: OccursShape = { form: 'on' };
    expect(holds(today, shape, today, true)).toBe(true);
    expect(holds(today + DAY - 1, shape, today, true)).toBe(true);
    expect(holds(today + DAY, shape, today, true)).toBe(false);
    // A plain instant as R also means its whole day.
    expect(holds(today + 1, shape, now)).toBe(true);
  });

  it('`this month` when now is the 1st at 00:00:00.000 is that new month', () => {
    const first = iso('2024-04-01T00:00:00.000Z');
    const b = occursBounds({ form: 'period', which: 'this', unit: 'month' }, null, false, first)!;
    expect([show(b.lo), show(b.hi)]).toEqual(['2024-04-01T00:00:00.000Z', '2024-05-01T00:00:00.000Z']);
    expect(occursHolds(first, b)).toBe(true);
    expect(occursHolds(first - 1, b)).toBe(false);
  });

  it('`last week` across a year boundary', () => {
    const jan2 = iso('2025-01-02T09:00:00.000Z'); // Thursday
    const b = occursBounds({ form: 'period', which: 'last', unit: 'week' }, null, false, jan2)!;
    expect([show(b.lo), show(b.hi)]).toEqual(['2024-12-23T00:00:00.000Z', '2024-12-30T00:00:00.000Z']);
    const next = occursBounds({ form: 'period', which: 'next', unit: 'year' }, null, false, jan2)!;
    expect([show(next.lo), show(next.hi)]).toEqual(['2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
    const lastMonth = occursBounds({ form: 'period', which: 'last', unit: 'month' }, null, false, jan2)!;
    expect([show(lastMonth.lo), show(lastMonth.hi)]).toEqual(['2024-12-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z']);
  });

  it("`between A and B` is inclusive, and B's whole day counts when B is a date", () => {
    const a = iso('2024-01-01T00:00:00.000Z');
    const b = iso('2024-01-31T00:00:00.000Z');
    const shape: OccursShape = { form: 'between' };
    expect(holds(a, shape, a, true, b, true)).toBe(true);
    expect(holds(a - 1, shape, a, true, b, true)).toBe(false);
    expect(holds(iso('2024-01-31T23:59:59.999Z'), shape, a, true, b, true)).toBe(true);
    expect(holds(iso('2024-02-01T00:00:00.000Z'), shape, a, true, b, true)).toBe(false);
    // B an instant: closed at exactly B.
    expect(holds(b, shape, a, false, b, false)).toBe(true);
    expect(holds(b + 1, shape, a, false, b, false)).toBe(false);
  });

  it('is false when t or a needed reference is missing', () => {
    const shape: OccursShape = { form: 'relative', op: '<=', amount: 1, unit: 'day', direction: 'before' };
    expect(occursBounds(shape, null, false, now)).toBeNull();
    expect(occursBounds({ form: 'between' }, now, false, now, undefined)).toBeNull();
    expect(occursHolds(undefined, occursBounds(shape, now, false, now))).toBe(false);
    expect(occursHolds(Number.NaN, occursBounds(shape, now, false, now))).toBe(false);
    expect(occursMatches(now, shape, undefined, false, now)).toBe(false);
  });

  it('classifies day-valued references syntactically', () => {
    const loc = { offset: 0, length: 0, line: 1, column: 1 };
    expect(isDayValuedRef({ kind: 'TimeWord', word: 'today', loc })).toBe(true);
    expect(isDayValuedRef({ kind: 'TimeWord', word: 'now', loc })).toBe(false);
    expect(isDayValuedRef({ kind: 'Call', name: 'date', args: [], loc })).toBe(true);
    expect(isDayValuedRef({ kind: 'Call', name: 'datetime', args: [], loc })).toBe(false);
    expect(isDayValuedRef({ kind: 'Identifier', name: 'A', loc })).toBe(false);
  });
});

describe('strings', () => {
  it('orders by code point, not UTF-16 unit: an astral character sorts after U+FFFD', () => {
    expect('😀' < '\uFFFD').toBe(true); // what a naive JS comparison says
    expect(compareCodePoints('😀', '\uFFFD')).toBe(1);
    expect(compareCodePoints('\uFFFD', '😀')).toBe(-1);
    expect(compareOp('>', '😀', '\uFFFD')).toBe(true);
    expect(compareCodePoints('abc', 'abd')).toBe(-1);
    expect(compareCodePoints('ab', 'abc')).toBe(-1);
    expect(compareCodePoints('same', 'same')).toBe(0);
    expect(compareCodePoints('Z', 'a')).toBe(-1);
  });

  it('orders like UTF-8 bytes (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        const bytes = Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
        expect(compareCodePoints(a, b)).toBe(bytes);
      }),
    );
  });

  it('counts code points', () => {
    expect(codePointLength('')).toBe(0);
    expect(codePointLength('åsa')).toBe(3);
    expect(codePointLength('😀x')).toBe(2);
    expect(codePointLength('\uD800')).toBe(1);
  });

  it('maps case with full Unicode rules: ß, Turkish İ/ı, Å', () => {
    expect(upperText('straße')).toBe('STRASSE');
    expect(lowerText('ÅSA')).toBe('åsa');
    expect(lowerText('İ')).toBe('i\u0307');
    expect(lowerText('ı')).toBe('ı');
    expect(upperText('ı')).toBe('I');
  });

  it('compares case-insensitively after lower-casing both sides', () => {
    expect(stringPredicate('equals', 'ÅSA', 'åsa', false)).toBe(true);
    expect(stringPredicate('equals', 'ÅSA', 'åsa', true)).toBe(false);
    expect(stringPredicate('equals', 'ÅSA', 'åsa')).toBe(false);
    // Dotless ı lower-cases to itself; I lower-cases to dotted i: no match.
    expect(stringPredicate('equals', 'ı', 'I', false)).toBe(false);
    expect(stringPredicate('equals', 'İstanbul', 'istanbul', false)).toBe(false);
    expect(stringPredicate('startsWith', 'İstanbul', 'i', false)).toBe(true);
    // ß has no single-character upper case; lower-casing STRASSE does not give ß.
    expect(stringPredicate('equals', 'STRASSE', 'straße', false)).toBe(false);
    expect(stringPredicate('equals', upperText('straße'), 'STRASSE')).toBe(true);
  });

  it('implements every string predicate, with the negative forms requiring a value', () => {
    const s = 'Hello World';
    expect(stringPredicate('startsWith', s, 'Hello')).toBe(true);
    expect(stringPredicate('startsWith', s, 'hello')).toBe(false);
    expect(stringPredicate('startsWith', s, 'hello', false)).toBe(true);
    expect(stringPredicate('endsWith', s, 'WORLD', false)).toBe(true);
    expect(stringPredicate('contains', s, 'o W')).toBe(true);
    expect(stringPredicate('contains', s, '')).toBe(true);
    expect(stringPredicate('notEqualTo', s, 'x')).toBe(true);
    expect(stringPredicate('notEqualTo', s, 'hello world', false)).toBe(false);
    expect(stringPredicate('doesNotStartWith', s, 'World')).toBe(true);
    expect(stringPredicate('doesNotEndWith', s, 'World')).toBe(false);
    expect(stringPredicate('doesNotContain', s, 'xyz')).toBe(true);
    for (const name of ['equals', 'notEqualTo', 'doesNotContain', 'doesNotStartWith', 'doesNotEndWith'] as const) {
      expect(stringPredicate(name, undefined, 'x')).toBe(false);
      expect(stringPredicate(name, 'x', undefined)).toBe(false);
      expect(stringPredicate(name, 1, '1')).toBe(false);
    }
  });

  it('compares a SQL-injection-looking literal as plain text', () => {
    const evil = "'; DROP TABLE profiles; --";
    expect(stringPredicate('equals', evil, "'; DROP TABLE profiles; --")).toBe(true);
    expect(likeMatches(evil, "'; DROP%")).toBe(true);
    expect(valuesEqual(evil, evil)).toBe(true);
  });
});

describe('like', () => {
  it('matches % as any run and _ as one character, over the whole string', () => {
    expect(likeMatches('pizza', 'pi%')).toBe(true);
    expect(likeMatches('pizza', '%zz%')).toBe(true);
    expect(likeMatches('pizza', 'pizza%')).toBe(true);
    expect(likeMatches('pizza', '%')).toBe(true);
    expect(likeMatches('', '%')).toBe(true);
    expect(likeMatches('', '_')).toBe(false);
    expect(likeMatches('pizza', 'p_zza')).toBe(true);
    expect(likeMatches('pizza', 'p_za')).toBe(false);
    expect(likeMatches('pizza', 'izz')).toBe(false);
    expect(likeMatches('pizza', 'Pizza')).toBe(false);
    expect(likeMatches('a%b', 'a%%b')).toBe(true);
    expect(likeMatches('abcbd', 'a%b_')).toBe(true);
    expect(likeMatches('mississippi', '%ss%ss%i')).toBe(true);
    expect(likeMatches('mississippi', '%ss%ss%ss%')).toBe(false);
  });

  it('treats _ as one code point, also for astral characters', () => {
    expect(likeMatches('a😀b', 'a_b')).toBe(true);
    expect(likeMatches('a😀b', 'a__b')).toBe(false);
    expect(likeMatches('😀', '😀')).toBe(true);
  });

  it('escapes % _ and \\ with a backslash; a trailing backslash is literal', () => {
    expect(likeMatches('50%', '50\\%')).toBe(true);
    expect(likeMatches('500', '50\\%')).toBe(false);
    expect(likeMatches('a_b', 'a\\_b')).toBe(true);
    expect(likeMatches('axb', 'a\\_b')).toBe(false);
    expect(likeMatches('a\\b', 'a\\\\b')).toBe(true);
    expect(likeMatches('ab\\', 'ab\\')).toBe(true);
    expect(likeMatches('abc', 'a\\bc')).toBe(true);
  });

  it('is false on non-strings and fast on adversarial patterns', () => {
    expect(likeMatches(undefined, '%')).toBe(false);
    expect(likeMatches(12, '12')).toBe(false);
    const start = performance.now();
    expect(likeMatches('a'.repeat(5000), `${'%a'.repeat(20)}b`)).toBe(false);
    expect(performance.now() - start).toBeLessThan(500);
  });
});

describe('regular expressions (RE2)', () => {
  it('matches anywhere unless anchored; (?i) works', () => {
    expect(regexMatches('order-123', '\\d+')).toBe(true);
    expect(regexMatches('order-123', '^\\d+$')).toBe(false);
    expect(regexMatches('ÅSA', '(?i)^åsa$')).toBe(true);
    expect(regexMatches('ÅSA', '^åsa$')).toBe(false);
    expect(regexMatches(undefined, '.*')).toBe(false);
  });

  it('rejects patterns RE2 does not support and never throws', () => {
    expect(isValidRegex('(a')).toBe(false);
    expect(isValidRegex('(a)\\1')).toBe(false);
    expect(isValidRegex('^[a-z]+$')).toBe(true);
    expect(regexMatches('aa', '(a)\\1')).toBe(false);
    expect(regexGroup('aa', '(a', 1)).toBeUndefined();
  });

  it('returns groups of the first match, missing when absent', () => {
    expect(regexGroup('id=42;id=7', 'id=(\\d+)', 1)).toBe('42');
    expect(regexGroup('id=42', 'id=(\\d+)', 0)).toBe('id=42');
    expect(regexGroup('b', '(a)|(b)', 1)).toBeUndefined();
    expect(regexGroup('b', '(a)|(b)', 2)).toBe('b');
    expect(regexGroup('x', 'id=(\\d+)', 1)).toBeUndefined();
    expect(regexGroup('id=4', 'id=(\\d+)', 2)).toBeUndefined();
  });

  it('runs the catastrophic (a+)+$ on 30,000 a + b in bounded time', () => {
    const text = `${'a'.repeat(30_000)}b`;
    const start = performance.now();
    expect(regexMatches(text, '(a+)+$')).toBe(false);
    expect(regexMatches(text, '(a+)+b$')).toBe(true);
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

describe('values and arithmetic', () => {
  it('compares only values of the same type', () => {
    expect(valuesEqual(1, 1)).toBe(true);
    expect(valuesEqual(1, '1')).toBe(false);
    expect(valuesEqual(true, true)).toBe(true);
    expect(valuesEqual(undefined, undefined)).toBe(false);
    expect(valuesEqual([1], [1])).toBe(false);
    expect(compareOp('!=', 1, undefined)).toBe(false);
    expect(compareOp('!=', 1, '2')).toBe(false);
    expect(compareOp('!=', true, false)).toBe(true);
    expect(compareOp('<', true, false)).toBe(false);
    expect(compareOp('<', 2, 10)).toBe(true);
    expect(compareOp('<', '2', '10')).toBe(false);
    expect(compareOp('>=', 3.5, 3.5)).toBe(true);
    expect(compareOp('<=', 1, undefined)).toBe(false);
    expect(compareValues(1, 'a')).toBeUndefined();
  });

  it('implements in / notIn with the missing-data rules', () => {
    expect(valueIn(1, [1, 2])).toBe(true);
    expect(valueIn('1', [1, 2])).toBe(false);
    expect(valueIn(undefined, [1, null])).toBe(false);
    expect(valueNotIn(3, [1, 2])).toBe(true);
    expect(valueNotIn(undefined, [1])).toBe(false);
    expect(valueNotIn(1, undefined)).toBe(false);
    expect(valueNotIn(1, [null, 2])).toBe(true);
  });

  it('gives missing for missing operands, division by zero and non-finite results', () => {
    expect(arithmetic('+', 2, 3)).toBe(5);
    expect(arithmetic('-', 2, 3)).toBe(-1);
    expect(arithmetic('*', 2, 3)).toBe(6);
    expect(arithmetic('/', 7, 2)).toBe(3.5);
    expect(arithmetic('%', -7, 3)).toBe(-1);
    expect(arithmetic('%', 7.5, 2)).toBe(1.5);
    expect(arithmetic('/', 1, 0)).toBeUndefined();
    expect(arithmetic('%', 1, 0)).toBeUndefined();
    expect(arithmetic('*', 1e308, 10)).toBeUndefined();
    expect(arithmetic('+', undefined, 1)).toBeUndefined();
    expect(arithmetic('+', 'a', 'b')).toBe('ab');
    expect(arithmetic('-', 'a', 'b')).toBeUndefined();
    expect(arithmetic('+', 'a', 1)).toBeUndefined();
  });
});

describe('kbnSum (SQLite sum())', () => {
  it('beats naive summation on [1e16, 1, -1e16]', () => {
    const values = [1e16, 1, -1e16];
    expect(values.reduce((a, b) => a + b, 0)).toBe(0);
    expect(kbnSum(values)).toBe(1);
    // As REALs (1e16 not integral-representable in JSON form) the compensation still recovers 1.
    expect(kbnSum([1e16, 0.5, 0.5, -1e16])).toBe(1);
    expect(kbnSum([0.1, 0.2, 0.3])).toBe(0.6);
    expect([0.1, 0.2, 0.3].reduce((a, b) => a + b, 0)).not.toBe(0.6);
  });

  it('sums integers exactly, skips non-numbers, and is 0 for none', () => {
    expect(kbnSum([])).toBe(0);
    expect(kbnSum([1, 'x', null, 2])).toBe(3);
    // Integers add exactly as 64-bit integers: 2^53 + 1 + 1, where doubles lose both ones.
    expect([2 ** 53, 1, 1].reduce((a, b) => a + b, 0)).toBe(2 ** 53);
    expect(kbnSum([2 ** 53, 1, 1])).toBe(2 ** 53 + 2);
    const acc = new KbnAccumulator();
    expect(acc.average()).toBeUndefined();
    acc.add(1);
    acc.add(2);
    expect(acc.average()).toBe(1.5);
  });

  const db = new Database(':memory:');
  const totals = db.prepare('SELECT total(value) AS t, avg(value) AS a FROM json_each(?)');
  const valueArb = fc.oneof(
    fc.integer({ min: -1_000_000, max: 1_000_000 }),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e20, max: 1e20 }),
    fc.double({ noNaN: true, min: -9.3e18, max: 9.3e18 }).map(Math.trunc),
    fc.constantFrom(1e16, -1e16, 2 ** 53 + 2, 9.2e18, -9.2e18, -(2 ** 63), 2 ** 63, 0.1, 1e21, 1e300, -1e300),
  );

  it('reads big integers as SQLite reads their JSON text, not as the exact double', () => {
    const values = [9.2e18, -4061110713104438000];
    const row = totals.get(JSON.stringify(values)) as { t: number };
    expect(kbnSum(values)).toBe(row.t);
    expect(kbnSum(values)).toBe(Number(9200000000000000000n - 4061110713104438000n));
  });

  it('agrees with SQLite total() and avg() bit for bit on values read from JSON (property)', () => {
    fc.assert(
      fc.property(fc.array(valueArb, { maxLength: 30 }), (values) => {
        const row = totals.get(JSON.stringify(values)) as { t: number; a: number | null };
        const acc = new KbnAccumulator();
        for (const v of values) acc.add(v);
        expect(Object.is(acc.result(), row.t) || acc.result() === row.t).toBe(true);
        expect(acc.average() ?? null).toBe(row.a);
      }),
      { numRuns: 3000 },
    );
  });
});
