import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { PQL_SQL_FUNCTIONS } from '../../src/pql/sql/sql-functions.js';
import { compilePredicate, compileToSql } from '../../src/pql/sql/to-sql.js';
import { DifferentialHarness, type MembershipStatus, type TestProfile } from './differential-harness.js';

const harness = new DifferentialHarness('to-sql');
afterAll(() => harness.close());

// A Friday; the ISO week began on Monday 2024-03-11.
const NOW = Date.parse('2024-03-15T12:00:00.000Z');
const H = 3_600_000;
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

let nextEventId = 1;
beforeEach(() => {
  nextEventId = 1;
});

interface EventSpec {
  at: number;
  type?: string;
  [field: string]: unknown;
}

function p(
  attributes: Record<string, unknown>,
  events: EventSpec[] = [],
  memberships: TestProfile['memberships'] = [],
): TestProfile {
  return {
    attributes,
    events: events.map(({ at, type, ...payload }) => ({
      id: nextEventId++,
      timestamp: at,
      eventType: type ?? 'commerce.purchases',
      payload,
    })),
    memberships,
  };
}

/**
 * The ids (1-based, in load order) of the profiles the SQL engine selects, after checking
 * that the JS engine selects the same ones and that no string literal or JSON path of the
 * expression made it into the SQL text.
 */
function select(source: string, now = NOW): number[] {
  const r = harness.compare(source, now);
  expect({ sql: r.sql, mismatches: r.mismatches }, `${source}\n${r.statement.sql}`).toEqual({
    sql: r.js,
    mismatches: [],
  });
  expect(r.statement.sql).not.toContain('$.');
  for (const m of source.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    if (m[1]!.length >= 3) expect(r.statement.sql).not.toContain(m[1]);
  }
  return r.sql;
}

describe('attribute comparisons and missing data', () => {
  beforeEach(() => {
    harness.load([
      p({ loyalty: { points: 10, tier: 'gold' }, person: { name: { firstName: 'John' } } }),
      p({ loyalty: { points: 5, tier: null } }),
      p({}),
      p({ loyalty: { points: 2.5, tier: 'silver' }, consents: { marketing: { email: true } } }),
    ]);
  });

  it('compares numbers and strings; a missing operand is false either way', () => {
    expect(select('loyalty.points = 10')).toEqual([1]);
    expect(select('loyalty.points != 10')).toEqual([2, 4]);
    expect(select('loyalty.points >= 5')).toEqual([1, 2]);
    expect(select('loyalty.points < 5')).toEqual([4]);
    expect(select('loyalty.tier = "gold"')).toEqual([1]);
    expect(select('loyalty.tier != "gold"')).toEqual([4]);
  });

  it('not flips exactly: not (x = 1) holds when x is missing, x notIn needs a value', () => {
    expect(select('not (loyalty.points = 10)')).toEqual([2, 3, 4]);
    expect(select('loyalty.points notIn [10]')).toEqual([2, 4]);
    expect(select('loyalty.points in [5, 10, null]')).toEqual([1, 2]);
    expect(select('loyalty.points notIn [5, null]')).toEqual([1, 4]);
    expect(select('not (loyalty.points notIn [5])')).toEqual([2, 3]);
  });

  it('isNull / isNotNull treat null and absent alike', () => {
    expect(select('loyalty.tier.isNull()')).toEqual([2, 3]);
    expect(select('loyalty.isNotNull()')).toEqual([1, 2, 4]);
    expect(select('person.name.firstName.isNotNull()')).toEqual([1]);
  });

  it('reads a boolean field as a condition (missing is false)', () => {
    expect(select('consents.marketing.email')).toEqual([4]);
    expect(select('not consents.marketing.email')).toEqual([1, 2, 3]);
    expect(select('consents.marketing.email = false')).toEqual([]);
  });

  it('and / or are two-valued', () => {
    expect(select('loyalty.points > 6 or loyalty.tier = "silver"')).toEqual([1, 4]);
    expect(select('not (loyalty.points > 6 and loyalty.tier = "gold")')).toEqual([2, 3, 4]);
  });

  it('compilePredicate is exactly 1 or 0 for every profile, never NULL', () => {
    const checked = harness.check('not (loyalty.points > 6) and (loyalty.tier = "gold" or loyalty.points < 100)');
    const { sql, params } = compilePredicate(checked, { now: NOW });
    const values = harness.conn.sqlite
      .prepare(`SELECT (${sql}) AS v FROM profiles AS p ORDER BY p.id`)
      .all(...(params as never[])) as { v: number }[];
    expect(values.map((r) => r.v)).toEqual([0, 1, 0, 1]);
  });

  it('puts the sandbox id first and filters on it', () => {
    const { sql, params } = compileToSql(harness.check('loyalty.points > 1'), { now: NOW, sandboxId: 99 });
    expect(sql.startsWith('SELECT p.id AS id FROM profiles AS p WHERE p.sandbox_id = ? AND (')).toBe(true);
    expect(params[0]).toBe(99);
    expect(harness.conn.sqlite.prepare(sql).all(...(params as never[]))).toEqual([]);
  });
});

describe('strings', () => {
  beforeEach(() => {
    harness.load([
      p({ person: { name: { firstName: 'John', lastName: 'Straße' } } }),
      p({ person: { name: { firstName: 'JOHN', lastName: 'STRASSE' } } }),
      p({ person: { name: { firstName: 'İlkay' } }, _tenant: { nickname: '\uFFFF' } }),
      p({ person: { name: { firstName: '' } }, _tenant: { nickname: '\u{10000}' } }),
      p({ person: { name: { firstName: 'a\u0000b😀' } }, _tenant: { nickname: '50% off_now' } }),
      p({}),
    ]);
  });

  it('orders strings by code point, not UTF-16 unit', () => {
    expect(select('_tenant.nickname > "\uFFFF"')).toEqual([4]);
    expect(select('_tenant.nickname < "\u{10000}"')).toEqual([3, 5]);
  });

  it('startsWith / endsWith / contains / equals with and without caseSensitive', () => {
    expect(select('person.name.firstName.startsWith("Jo")')).toEqual([1]);
    expect(select('person.name.firstName.startsWith("jo", false)')).toEqual([1, 2]);
    expect(select('person.name.firstName.endsWith("HN", true)')).toEqual([2]);
    expect(select('person.name.firstName.endsWith("hn", false)')).toEqual([1, 2]);
    expect(select('person.name.firstName.contains("OH", false)')).toEqual([1, 2]);
    expect(select('person.name.firstName.equals("john", false)')).toEqual([1, 2]);
    expect(select('person.name.firstName.notEqualTo("john", false)')).toEqual([3, 4, 5]);
    // Unicode lower-casing: İ lower-cases to i + combining dot.
    expect(select('person.name.firstName.startsWith("i̇l", false)')).toEqual([3]);
    expect(select('person.name.lastName.equals("straße", false)')).toEqual([1]);
  });

  it('a case-insensitive prefix is a LIKE, with its wildcards escaped and text after a NUL ignored', () => {
    const sqlOf = (source: string) => compileToSql(harness.check(source), { now: NOW, sandboxId: 1 }).sql;
    expect(select('_tenant.nickname.startsWith("50% OFF_", false)')).toEqual([5]);
    expect(select('_tenant.nickname.startsWith("50x", false)')).toEqual([]);
    expect(select('_tenant.nickname.startsWith("5_%", false)')).toEqual([]);
    expect(select('person.name.firstName.startsWith("A", false)')).toEqual([5]);
    expect(select('person.name.firstName.startsWith("JO", false)')).toEqual([1, 2]);
    expect(select('person.name.firstName.doesNotStartWith("jo", false)')).toEqual([3, 4, 5]);
    expect(sqlOf('person.name.firstName.startsWith("JO", false)')).toContain(' LIKE ? ESCAPE ');
    // Needles with i or k (İ and the Kelvin sign lower-case to them) keep Unicode lower-casing.
    expect(sqlOf('person.name.firstName.startsWith("il", false)')).not.toContain(' LIKE ');
    expect(select('person.name.firstName.endsWith("b😀", false)')).toEqual([5]);
  });

  it('negative forms need a present value; the empty string is a prefix and suffix of everything', () => {
    expect(select('person.name.firstName.doesNotStartWith("J")')).toEqual([3, 4, 5]);
    expect(select('person.name.firstName.doesNotContain("o", false)')).toEqual([3, 4, 5]);
    expect(select('person.name.firstName.doesNotEndWith("")')).toEqual([]);
    expect(select('person.name.firstName.endsWith("")')).toEqual([1, 2, 3, 4, 5]);
    expect(select('person.name.firstName.doesNotEndWith(" ")')).toEqual([1, 2, 3, 4, 5]);
  });

  it('handles text with NUL characters and astral code points', () => {
    expect(select('person.name.firstName.length() = 4')).toEqual([1, 2, 5]);
    expect(select('person.name.firstName.contains("b😀")')).toEqual([5]);
    expect(select('person.name.firstName.endsWith("b😀")')).toEqual([5]);
    expect(select('person.name.firstName.startsWith("a\\u0000")')).toEqual([5]);
  });

  it('like: % and _ with escapes, case-sensitive, whole string', () => {
    expect(select('person.name.firstName like "J_hn"')).toEqual([1]);
    expect(select('person.name.firstName like "%"')).toEqual([1, 2, 3, 4, 5]);
    // PQL text `"%\\%%"` is the pattern %\%%: a literal % anywhere.
    expect(select('_tenant.nickname like "%\\\\%%"')).toEqual([5]);
    expect(select('_tenant.nickname like "50\\\\% off\\\\_now"')).toEqual([5]);
    expect(select('_tenant.nickname like "50\\\\% off\\\\_"')).toEqual([]);
    expect(select('person.name.firstName like "a_b_"')).toEqual([5]);
  });

  it('matches (RE2, anywhere) and regexGroup', () => {
    expect(select('person.name.firstName.matches("(?i)^jo")')).toEqual([1, 2]);
    expect(select('person.name.firstName.matches("hn$")')).toEqual([1]);
    expect(select('person.name.firstName.regexGroup("^(.)(.)", 2) = "O"')).toEqual([2]);
  });

  it('matches with a literal pattern is a native string test, with the same answers as RE2', () => {
    const sqlOf = (source: string) => compileToSql(harness.check(source), { now: NOW, sandboxId: 1 }).sql;
    for (const [pattern, ids] of [
      ['ohn$', [1]],
      ['^JO', [2]],
      ['^John$', [1]],
      ['b😀$', [5]],
      ['a\\u0000b', [5]],
      ['\\\\.', []],
      ['^$', [4]],
      ['', [1, 2, 3, 4, 5]],
      ['$', [1, 2, 3, 4, 5]],
      ['Stra\\\\$e', []],
    ] as const) {
      const source = `person.name.firstName.matches("${pattern}") or person.name.lastName.matches("${pattern}")`;
      expect(select(source), source).toEqual(ids);
      expect(sqlOf(source), source).not.toContain('pql_re_match');
    }
    // Not literal: a class, a quantifier, an escape that is not punctuation, a flag.
    for (const pattern of ['J.hn', 'Jo+', '\\\\d', '(?i)john', 'a|b', 'x$y']) {
      expect(sqlOf(`person.name.firstName.matches("${pattern}")`), pattern).toContain('pql_re_match');
    }
  });

  it('lower / upper / + use Unicode case mapping and concatenate', () => {
    expect(select('person.name.lastName.upper() = "STRASSE"')).toEqual([1, 2]);
    expect(select('person.name.firstName.lower() = "john"')).toEqual([1, 2]);
    expect(select('person.name.firstName + "!" = "John!"')).toEqual([1]);
  });
});

describe('arithmetic', () => {
  beforeEach(() => {
    harness.load([
      p({ loyalty: { points: 10 }, _tenant: { score: -7 } }),
      p({ loyalty: { points: 0 }, _tenant: { score: 1e308 } }),
      p({ loyalty: { points: 7 } }),
    ]);
  });

  it('divides as reals and keeps the sign of the dividend in %', () => {
    expect(select('loyalty.points / 4 = 2.5')).toEqual([1]);
    expect(select('_tenant.score % 3 = -1')).toEqual([1]);
    expect(select('loyalty.points % 4 = 3')).toEqual([3]);
  });

  it('division by zero, overflow and missing operands are missing', () => {
    expect(select('10 / loyalty.points > 0')).toEqual([1, 3]);
    expect(select('not (10 / loyalty.points > 0)')).toEqual([2]);
    expect(select('_tenant.score * 10 > 0')).toEqual([]);
    expect(select('(_tenant.score * 10).isNull()')).toEqual([2, 3]);
    expect(select('loyalty.points % 0 = 0')).toEqual([]);
    expect(select('-loyalty.points < -5')).toEqual([1, 3]);
  });
});

describe('datetimes and occurs', () => {
  const at = (s: string) => Date.parse(s);
  beforeEach(() => {
    harness.load([
      p({ loyalty: { joinDate: '2024-03-01T00:00:00.000Z' }, person: { birthDate: '2000-02-29T00:00:00.000Z' } }),
      p({ loyalty: { joinDate: '2024-02-29T23:59:59.999Z' }, person: { birthDate: '2000-03-16T00:00:00.000Z' } }),
      p({ loyalty: { joinDate: iso(NOW - 7 * DAY) }, createdAt: '2024-03-12T08:00:00.000Z' }),
      p({ loyalty: { joinDate: iso(NOW - 7 * DAY - 1) }, createdAt: '2024-03-11T00:00:00.000Z' }),
      p({ loyalty: { joinDate: '2024-03-10T23:59:59.999Z' }, createdAt: '2024-03-10T23:59:59.999Z' }),
      p({ loyalty: { joinDate: '2024-01-31T10:00:00.000Z' }, createdAt: '2024-02-29T10:00:00.000Z' }),
      p({}),
    ]);
  });

  it('compares datetime fields with date literals as instants', () => {
    expect(select('loyalty.joinDate >= date(2024, 3, 1)')).toEqual([1, 3, 4, 5]);
    expect(select('loyalty.joinDate < datetime("2024-03-01T01:00:00+01:00")')).toEqual([2, 6]);
    expect(select('person.birthDate = date("2000-02-29")')).toEqual([1]);
  });

  it('occurs this month / last week / = N days before today follow the UTC calendar', () => {
    expect(select('loyalty.joinDate occurs this month')).toEqual([1, 3, 4, 5]);
    expect(select('createdAt occurs last week')).toEqual([5]);
    expect(select('createdAt occurs this week')).toEqual([3, 4]);
    expect(select('createdAt occurs = 3 days before today')).toEqual([3]);
    expect(select('createdAt occurs 3 days before today')).toEqual([3]);
    expect(select('createdAt occurs != 3 days before today')).toEqual([4, 5, 6]);
  });

  it('occurs <= / < N units before now bound both ends exactly', () => {
    // Profile 3 joined exactly 7 days before now, profile 4 one millisecond earlier.
    expect(select('loyalty.joinDate occurs <= 7 days before now')).toEqual([3, 5]);
    expect(select('loyalty.joinDate occurs < 7 days before now')).toEqual([5]);
    expect(select('loyalty.joinDate occurs >= 7 days before now')).toEqual([1, 2, 3, 4, 6]);
    expect(select('loyalty.joinDate occurs > 7 days before now')).toEqual([1, 2, 4, 6]);
  });

  it('between includes the whole last day when it is a date; after a date means after that day', () => {
    expect(select('createdAt occurs between date(2024, 3, 1) and date(2024, 3, 10)')).toEqual([5]);
    expect(select('createdAt occurs between date(2024, 3, 1) and datetime("2024-03-10T00:00:00Z")')).toEqual([]);
    expect(select('createdAt occurs after date(2024, 3, 10)')).toEqual([3, 4]);
    expect(select('createdAt occurs after datetime("2024-03-10T00:00:00Z")')).toEqual([3, 4, 5]);
    expect(select('createdAt occurs before date(2024, 3, 11)')).toEqual([5, 6]);
    expect(select('createdAt occurs on date(2024, 3, 10)')).toEqual([5]);
  });

  it('occurs against a per-row reference, calendar months included', () => {
    // Jan 31 + 1 month is Feb 29 in 2024: createdAt 2024-02-29T10:00 is exactly at the bound.
    expect(select('createdAt occurs <= 1 month after loyalty.joinDate')).toEqual([3, 4, 5, 6]);
    expect(select('createdAt occurs < 1 month after loyalty.joinDate')).toEqual([3, 4, 5]);
    expect(select('createdAt occurs on loyalty.joinDate')).toEqual([5]);
    expect(select('createdAt occurs < 3 days after loyalty.joinDate')).toEqual([4, 5]);
    expect(select('loyalty.joinDate occurs before createdAt')).toEqual([3, 4, 6]);
  });

  it('age() counts whole calendar years; getYear/getMonth/getDayOfMonth read UTC fields', () => {
    expect(select('age(person.birthDate) = 24')).toEqual([1]);
    expect(select('age(person.birthDate) = 23')).toEqual([2]);
    expect(select('age(person.birthDate) = 24', at('2024-03-16T00:00:00.000Z'))).toEqual([1, 2]);
    expect(select('loyalty.joinDate.getMonth() = 2 and loyalty.joinDate.getDayOfMonth() = 29')).toEqual([2]);
    expect(select('loyalty.joinDate.getYear() = currentYear()')).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('reads the datetime once for a conjunction of ranges on it', () => {
    const source = 'age(person.birthDate) >= 23 and age(person.birthDate) < 25';
    expect(select(source)).toEqual([1, 2]);
    expect(select('age(person.birthDate) >= 24 and age(person.birthDate) <= 24')).toEqual([1]);
    expect(select('age(person.birthDate) > 24 and age(person.birthDate) < 24')).toEqual([]);
    const { sql } = compileToSql(harness.check(source), { now: NOW, sandboxId: 1 });
    expect(sql.match(/json_extract/g)).toHaveLength(1);
    expect(sql).toContain('BETWEEN');
  });
});

describe('events', () => {
  beforeEach(() => {
    harness.load([
      p({ loyalty: { points: 50 }, homeAddress: { countryCode: 'SE' } }, [
        {
          at: NOW - DAY,
          commerce: { order: { priceTotal: 10 } },
          productListItems: [
            { SKU: 'SH-41', category: 'shoes', quantity: 1 },
            { SKU: 'HT-1', category: 'hats', quantity: 3 },
          ],
        },
        { at: NOW - 7 * DAY, commerce: { order: { priceTotal: 5.5 } } },
        { at: NOW - 8 * DAY, commerce: { order: { priceTotal: 100 } } },
        { at: NOW - H, type: 'web.pageview', web: { webPageDetails: { name: 'Home' } } },
      ]),
      p({ loyalty: { points: 1 } }, [{ at: NOW - 2 * H, type: 'web.pageview' }]),
      p({}),
    ]);
  });

  it('counts events of a type in a window with index-friendly conditions', () => {
    const source = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now].count() >= 2';
    expect(select(source)).toEqual([1]);
    const plan = (sql: string, params: unknown[]) =>
      (harness.conn.sqlite.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(params as never[])) as { detail: string }[])
        .map((r) => r.detail)
        .join('\n');
    // Per profile: one range of the (profile_id, event_type, ts) index.
    const correlated = compilePredicate(harness.check(source), { now: NOW });
    expect(correlated.sql).toBe(
      '(SELECT count(*) FROM events AS e1 WHERE e1.profile_id = p.id AND (e1.event_type = ? AND e1.ts BETWEEN ? AND ?)) >= ?',
    );
    expect(correlated.params).toEqual(['commerce.purchases', NOW - 7 * DAY, NOW, 2]);
    expect(plan(`SELECT p.id FROM profiles AS p WHERE ${correlated.sql}`, correlated.params)).toContain(
      'events_profile_type_ts (profile_id=? AND event_type=? AND ts>? AND ts<?)',
    );
    // With the sandbox known: one grouped range of the (sandbox_id, event_type, ts) index for all
    // profiles, and those ids are the answer (no profile row read).
    const { sql, params } = compileToSql(harness.check(source), { now: NOW, sandboxId: 1 });
    expect(sql).toBe(
      'SELECT p.id AS id FROM (SELECT e1.profile_id AS id FROM events AS e1 WHERE e1.sandbox_id = ? AND (e1.event_type = ? AND e1.ts BETWEEN ? AND ?) GROUP BY e1.profile_id HAVING count(*) >= ?) AS p',
    );
    expect(params).toEqual([1, 'commerce.purchases', NOW - 7 * DAY, NOW, 2]);
    expect(plan(sql, params)).toContain('events_sandbox_type_ts (sandbox_id=? AND event_type=? AND ts>? AND ts<?)');
  });

  it('keeps event conditions that read the profile correlated, and takes complements for counts that hold at 0', () => {
    expect(select('xEvent[commerce.order.priceTotal < ^.loyalty.points].count() = 2')).toEqual([1]);
    expect(select('xEvent[eventType = "commerce.purchases"].count() < 3')).toEqual([2, 3]);
    expect(select('xEvent[eventType = "commerce.purchases"].count() != 3')).toEqual([2, 3]);
    const windowed = 'xEvent[eventType = "x" and timestamp occurs <= 7 days before now].count() < 3';
    expect(select(windowed)).toEqual([1, 2, 3]);
    const { sql } = compileToSql(harness.check(windowed), { now: NOW, sandboxId: 1 });
    expect(sql).toContain('+p.id NOT IN (SELECT e1.profile_id AS id FROM events AS e1 WHERE e1.sandbox_id = ?');
    expect(sql).toContain('HAVING NOT coalesce(count(*) < ?, 0)');
  });

  it('counts the distinct values of a path over events in one grouped pass (groupBy(…).keys())', () => {
    const statement = (source: string) => compileToSql(harness.check(source), { now: NOW, sandboxId: 1 }).sql;
    for (const source of [
      'xEvent[timestamp occurs <= 7 days before now].eventType.distinct().count() >= 2',
      'xEvent[timestamp occurs <= 7 days before now].groupBy(eventType).keys().count() >= 2',
    ]) {
      expect(statement(source), source).toContain('HAVING count(DISTINCT e1.event_type) >= ?');
      // Within 7 days profile 1 has purchases and a page view, profile 2 one page view.
      expect(select(source), source).toEqual([1]);
      expect(select(source.replace('>= 2', '>= 1')), source).toEqual([1, 2]);
    }
    // A count that holds at 0 is the complement of the grouped pass; a filtered distinct stays a probe.
    expect(statement('xEvent.eventType.distinct().count() < 2')).toContain('NOT IN');
    expect(statement('xEvent.eventType.distinct().intersection(["x"]).count() = 1')).not.toContain('count(DISTINCT');
  });

  it('count() = 0 holds for a profile without events', () => {
    expect(select('xEvent.count() = 0')).toEqual([3]);
    expect(select('xEvent[eventType = "web.pageview"].count() = 1')).toEqual([1, 2]);
  });

  it('sum / average / min / max over events; sum of none is 0, average of none is missing', () => {
    expect(select('xEvent.sum(commerce.order.priceTotal) = 115.5')).toEqual([1]);
    expect(select('xEvent[timestamp occurs <= 7 days before now].sum(commerce.order.priceTotal) = 15.5')).toEqual([1]);
    expect(select('xEvent.sum(commerce.order.priceTotal) = 0')).toEqual([2, 3]);
    expect(select('xEvent.average(commerce.order.priceTotal) = 38.5')).toEqual([1]);
    expect(select('xEvent.average(commerce.order.priceTotal).isNull()')).toEqual([2, 3]);
    expect(
      select('xEvent.min(commerce.order.priceTotal) = 5.5 and xEvent.max(commerce.order.priceTotal) = 100'),
    ).toEqual([1]);
  });

  it('answers tests of one set of events in one grouped pass', () => {
    const statement = (source: string) => compileToSql(harness.check(source), { now: NOW, sandboxId: 1 }).sql;
    const typed = 'xEvent[eventType = "commerce.purchases"]';
    const range = `let M = (${typed}.max(commerce.order.priceTotal)) in (M > 50 and M < 200)`;
    expect(select(range)).toEqual([1]);
    expect(select(`let M = (${typed}.max(commerce.order.priceTotal)) in (M > 1 and M < 100)`)).toEqual([]);
    // Holds without events (a count of 0): the group gives the complement.
    const paid = 'xEvent[eventType = "commerce.purchases" and commerce.order.priceTotal > 0]';
    const counts = `${paid}.count() < 2 or (${paid}.count() = 3 and ${paid}.min(commerce.order.priceTotal) = 5.5)`;
    expect(select(counts)).toEqual([1, 2, 3]);
    expect(select(`not (${typed}.max(commerce.order.priceTotal) < 50) and ${typed}.count() < 3`)).toEqual([2, 3]);
    for (const source of [range, counts]) {
      const sql = statement(source);
      expect(sql, source).not.toContain('FROM profiles AS p');
      expect(sql.match(/GROUP BY/g), source).toHaveLength(1);
    }
    // Payload-free tests of typed events stay a probe per profile, answered from the index.
    expect(statement(`${typed}.count() >= 1`)).toContain('FROM profiles');
  });

  it('computes a value compared twice once', () => {
    const typed = 'xEvent[eventType = "commerce.purchases"]';
    const sum = `let S = (${typed}.sum(commerce.order.priceTotal)) in (S > 100 and S < 200)`;
    expect(select(sum)).toEqual([1]);
    expect(select(`let S = (${typed}.sum(commerce.order.priceTotal)) in (S < 100 or S > 115)`)).toEqual([1, 2, 3]);
    expect(select(`let S = (${typed}.sum(commerce.order.priceTotal)) in (not (S > 100 and S < 200))`)).toEqual([2, 3]);
    const { sql } = compileToSql(harness.check(sum), { now: NOW, sandboxId: 1 });
    expect(sql.match(/total\(/g)).toHaveLength(1);
  });

  it('exists / forall: forall is true for no events', () => {
    expect(select('xEvent.exists(web.webPageDetails.name = "Home")')).toEqual([1]);
    expect(select('xEvent.forall(eventType = "web.pageview")')).toEqual([2, 3]);
    expect(select('exists E from xEvent where E.eventType = "web.pageview" and loyalty.points > 10')).toEqual([1]);
    expect(select('forall E from xEvent : E.timestamp occurs <= 3 hours before now')).toEqual([2, 3]);
  });

  it('select and aggregate-over name the item', () => {
    expect(select('(select E from xEvent where E.commerce.order.priceTotal > 6).count() = 2')).toEqual([1]);
    expect(
      select('(sum E.commerce.order.priceTotal over E from xEvent where E.timestamp occurs <= 7 days before now) > 15'),
    ).toEqual([1]);
    expect(select('(count E over E from xEvent where E.eventType = "web.pageview") = 1')).toEqual([1, 2]);
    expect(select('(count E.commerce.order.priceTotal over E from xEvent where true) = 3')).toEqual([1]);
  });

  it('filters nested arrays; ^ reaches the enclosing scopes and $1 the profile', () => {
    expect(select('xEvent[productListItems[category = "shoes"].count() > 0].count() = 1')).toEqual([1]);
    expect(
      select('xEvent.exists(productListItems.exists(quantity * 10 < ^^.loyalty.points and SKU = "HT-1"))'),
    ).toEqual([1]);
    expect(
      select(
        'xEvent.exists(productListItems.exists(^.commerce.order.priceTotal = 10 and $1.homeAddress.countryCode = "SE"))',
      ),
    ).toEqual([1]);
    expect(select('xEvent.exists(productListItems.sum(quantity) = 4)')).toEqual([1]);
    expect(select('xEvent.exists(productListItems.exists(name.equals("x", false)))')).toEqual([]);
  });

  it('head() is the earliest event; topN / bottomN rank by a field', () => {
    expect(select('xEvent.head().commerce.order.priceTotal = 100')).toEqual([1]);
    expect(select('xEvent.head().eventType = "web.pageview"')).toEqual([2]);
    expect(select('xEvent.topN(commerce.order.priceTotal, 2).sum(commerce.order.priceTotal) = 110')).toEqual([1]);
    expect(select('xEvent.bottomN(commerce.order.priceTotal, 1).head().commerce.order.priceTotal = 5.5')).toEqual([1]);
    expect(select('xEvent.head().isNull()')).toEqual([3]);
  });
});

describe('let and if', () => {
  beforeEach(() => {
    harness.load([
      p({ loyalty: { tier: 'gold', points: 10 } }, [
        { at: NOW - H, commerce: { order: { priceTotal: 400 } } },
        { at: NOW - 2 * H, commerce: { order: { priceTotal: 300 } } },
      ]),
      p({ loyalty: { tier: 'silver', points: 10 } }, [{ at: NOW - H, commerce: { order: { priceTotal: 50 } } }]),
      p({}),
    ]);
  });

  it('let binds a value once and inlines it', () => {
    expect(select('let S = (xEvent.sum(commerce.order.priceTotal)) in (S > 100 and S < 1000)')).toEqual([1]);
    expect(select('let T = (loyalty.tier) in (T = "gold" or T = "silver")')).toEqual([1, 2]);
  });

  it('if chooses a branch; a missing condition takes the else branch', () => {
    expect(select('if(loyalty.tier = "gold", 2, 1) = 2')).toEqual([1]);
    expect(select('if(loyalty.tier = "gold", 2, 1) = 1')).toEqual([2, 3]);
    expect(select('if(loyalty.points > 5, loyalty.tier, "none") = "silver"')).toEqual([2]);
  });
});

describe('CHAIN', () => {
  const chain = (when = '') =>
    `CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "b")${when ? ` WHEN(${when})` : ''}])`;

  it('runs a CHAIN of the most steps the checker allows (16), each within an hour of the one before', () => {
    const steps = Array.from({ length: 16 }, (_, i) => i);
    const events = (skip: number) =>
      steps.filter((i) => i !== skip).map((i) => ({ at: NOW - 20 * H + i * 60_000, type: `t${i}` }));
    harness.load([
      p({}, events(-1)),
      p({}, events(7)),
      p(
        {},
        [...events(-1)].reverse().map((e, i) => ({ ...e, at: NOW - H + i })),
      ),
    ]);
    const source = `CHAIN(xEvent, timestamp, [${steps
      .map((i) => `S${i}: WHAT(eventType = "t${i}")${i > 0 ? ` WHEN(<= 1 hours after S${i - 1})` : ''}`)
      .join(', ')}])`;
    expect(select(source)).toEqual([1]);
  });

  it('needs strictly increasing timestamps: equal timestamps cannot be consecutive steps', () => {
    harness.load([
      p({}, [
        { at: NOW - H, type: 'a' },
        { at: NOW - H, type: 'b' },
      ]),
      p({}, [
        { at: NOW - H, type: 'b' },
        { at: NOW - H + 1, type: 'a' },
      ]),
      p({}, [
        { at: NOW - H, type: 'a' },
        { at: NOW - H + 1, type: 'b' },
      ]),
    ]);
    expect(select(chain())).toEqual([3]);
    expect(select(`not ${chain()}`)).toEqual([1, 2]);
  });

  it('uses each event for one step only', () => {
    const same = 'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "a")])';
    harness.load([
      p({}, [{ at: NOW - H, type: 'a' }]),
      p({}, [
        { at: NOW - 2 * H, type: 'a' },
        { at: NOW - H, type: 'a' },
      ]),
    ]);
    expect(select(same)).toEqual([2]);
  });

  it('is an existence search, not a greedy match', () => {
    harness.load([
      // The first A has no B within an hour; the second A does.
      p({}, [
        { at: NOW - 10 * H, type: 'a' },
        { at: NOW - 8 * H, type: 'b' },
        { at: NOW - 5 * H, type: 'a' },
        { at: NOW - 5 * H + 30 * 60_000, type: 'b' },
      ]),
      p({}, [
        { at: NOW - 10 * H, type: 'a' },
        { at: NOW - 8 * H, type: 'b' },
      ]),
    ]);
    expect(select(chain('<= 1 hours after A'))).toEqual([1]);
    expect(select(chain('> 1 hours after A'))).toEqual([1, 2]);
  });

  it('includes both ends of a WHEN window on an earlier step, to the millisecond', () => {
    harness.load([
      p({}, [
        { at: NOW - 2 * H, type: 'a' },
        { at: NOW - H, type: 'b' },
      ]),
      p({}, [
        { at: NOW - 2 * H - 1, type: 'a' },
        { at: NOW - H, type: 'b' },
      ]),
      p({}, [
        { at: NOW - 2 * H, type: 'a' },
        { at: NOW - 2 * H + 1, type: 'b' },
      ]),
    ]);
    expect(select(chain('<= 1 hours after A'))).toEqual([1, 3]);
    expect(select(chain('< 1 hours after A'))).toEqual([3]);
    expect(select(chain('>= 1 hours after A'))).toEqual([1, 2]);
    expect(select(chain('> 1 hours after A'))).toEqual([2]);
    expect(select(chain('after A'))).toEqual([1, 2, 3]);
    expect(select(chain('= 0 days after A'))).toEqual([1, 2, 3]);
    expect(select(chain('= 1 days after A'))).toEqual([]);
  });

  it('checks WHEN against now and against any earlier step', () => {
    const three =
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(<= 1 days before now), B: WHAT(eventType = "b"), C: WHAT(eventType = "c") WHEN(<= 2 hours after A)])';
    harness.load([
      p({}, [
        { at: NOW - 3 * H, type: 'a' },
        { at: NOW - 2 * H, type: 'b' },
        { at: NOW - H - 1, type: 'c' },
      ]),
      p({}, [
        { at: NOW - 3 * H, type: 'a' },
        { at: NOW - 2 * H, type: 'b' },
        { at: NOW - H + 1, type: 'c' },
      ]),
      p({}, [
        { at: NOW - 2 * DAY, type: 'a' },
        { at: NOW - 2 * H, type: 'b' },
        { at: NOW - H, type: 'c' },
      ]),
    ]);
    expect(select(three)).toEqual([1]);
    const { sql } = compileToSql(harness.check(three), { now: NOW, sandboxId: 1 });
    // Searched from the last step backwards; C's window on A becomes a range on A's time.
    expect(sql).toContain('e2.ts < e1.ts');
    expect(sql).toContain('e3.ts < e2.ts');
    expect(sql).toContain('e3.ts >= e1.ts - ? AND e3.ts <= e1.ts - ?');
  });
});

describe('inSegment', () => {
  it('is true for REALIZED and EXISTING members only', () => {
    harness.load([
      p({}, [], [{ audienceId: 1, status: 'REALIZED' }]),
      p({}, [], [{ audienceId: 1, status: 'EXISTING' }]),
      p({}, [], [{ audienceId: 1, status: 'EXITED' }]),
      p({}, [], [{ audienceId: 2, status: 'REALIZED' }]),
    ]);
    expect(select('inSegment("VIP")')).toEqual([1, 2]);
    expect(select('inSegment("2") and not inSegment("VIP")')).toEqual([4]);
    expect(select('not inSegment("Newsletter")')).toEqual([1, 2, 3, 4]);
  });

  it('reads a field of the row of a current member of an external audience, typed, with bound parameters', () => {
    const row = (payload: Record<string, unknown>, status: MembershipStatus = 'REALIZED') => [
      { audienceId: 2, status, payload },
    ];
    harness.load([
      p({}, [], row({ tier: 'gold', score: 7, optedIn: true, since: '2024-03-01T00:00:00.000Z' })),
      p({}, [], row({ tier: 'silver', score: 2.5, optedIn: false, since: null }, 'EXISTING')),
      p({}, [], row({ tier: 'gold', score: 9, optedIn: true, since: '2023-01-01T00:00:00.000Z' }, 'EXITED')),
      p({}, [], [{ audienceId: 1, status: 'REALIZED' }]),
      p({}, [], row({})),
    ]);
    expect(select('inSegment("Churn risk").payload.tier = "gold"')).toEqual([1]);
    expect(select('inSegment("2").payload.score > 2')).toEqual([1, 2]);
    expect(select('inSegment("2").payload.optedIn = false')).toEqual([2]);
    expect(select('inSegment("2").payload.since occurs <= 30 days before now')).toEqual([1]);
    expect(select('inSegment("2").payload.since.isNull()')).toEqual([2, 3, 4, 5]);
    // Missing for a non-member, so `!=` is false there too; `not (… = …)` is true.
    expect(select('inSegment("2").payload.tier != "gold"')).toEqual([2]);
    expect(select('not (inSegment("2").payload.tier = "gold")')).toEqual([2, 3, 4, 5]);
    expect(select('inSegment("2").payload.tier in ["gold", "silver"] and inSegment("2").payload.score < 5')).toEqual([
      2,
    ]);
  });

  it('answers set expressions of audiences and event conditions without reading profile rows', () => {
    harness.load([
      p({ loyalty: { points: 1 } }, [{ type: 'x', at: NOW - DAY }], [{ audienceId: 1, status: 'REALIZED' }]),
      p(
        { loyalty: { points: 2 } },
        [],
        [
          { audienceId: 1, status: 'EXISTING' },
          { audienceId: 2, status: 'REALIZED' },
        ],
      ),
      p({ loyalty: { points: 3 } }, [{ type: 'x', at: NOW - DAY }], [{ audienceId: 2, status: 'EXISTING' }]),
      p({ loyalty: { points: 4 } }, [{ type: 'x', at: NOW - DAY }], [{ audienceId: 3, status: 'REALIZED' }]),
      p({ loyalty: { points: 5 } }, [], [{ audienceId: 1, status: 'EXITED' }]),
    ]);
    const statement = (source: string) => compileToSql(harness.check(source), { now: NOW, sandboxId: 1 }).sql;
    const union = 'inSegment("VIP") or (inSegment("2") and not inSegment("Newsletter"))';
    expect(select(union)).toEqual([1, 2, 3]);
    expect(statement(union)).not.toContain('FROM profiles');
    expect(statement(union)).toContain(' EXCEPT ');
    // An event condition on the profile's id filters the audience's members.
    const buyers = 'inSegment("VIP") and xEvent[eventType = "x"].count() >= 1';
    expect(select(buyers)).toEqual([1]);
    expect(statement(buyers)).not.toContain('FROM profiles');
    const either =
      '(inSegment("2") or xEvent[eventType = "x" and timestamp occurs <= 7 days before now].count() >= 1) and not inSegment("Newsletter")';
    expect(select(either)).toEqual([1, 2, 3]);
    expect(statement(either)).not.toContain('FROM profiles');
    // A condition on attributes needs the profile row: the statement scans profiles.
    const points = 'inSegment("VIP") and loyalty.points > 1';
    expect(select(points)).toEqual([2]);
    expect(statement(points)).toContain('FROM profiles AS p WHERE p.sandbox_id = ?');
    expect(select('not inSegment("VIP") and not inSegment("2")')).toEqual([4, 5]);
  });

  it("adds the caller's conditions on p.id to either form", () => {
    harness.load([
      p({}, [], [{ audienceId: 1, status: 'REALIZED' }]),
      p({}, [], [{ audienceId: 1, status: 'REALIZED' }]),
      p({}, [], []),
    ]);
    for (const source of ['inSegment("VIP")', 'inSegment("VIP") or loyalty.points = 1', 'true']) {
      const { sql, params } = compileToSql(harness.check(source), {
        now: NOW,
        sandboxId: 1,
        where: [{ sql: 'p.id > ?', params: [1] }],
      });
      const ids = harness.conn.sqlite
        .prepare(`SELECT id FROM (${sql}) ORDER BY id`)
        .pluck()
        .all(...(params as never[]));
      expect(ids, source).toEqual(source === 'true' ? [2, 3] : [2]);
    }
  });
});

describe('arrays and maps', () => {
  beforeEach(() => {
    harness.load([
      p({
        preferences: { categories: ['shoes', 'hats', 'shoes'] },
        _tenant: { tags: ['hats'], scores: [1, 2.5, null] },
      }),
      p({ preferences: { categories: [] }, _tenant: { tags: ['x'], prefs: { a: 'John', k: 'v' } } }),
      p({ preferences: { categories: null }, _tenant: { prefs: { b: null } } }),
    ]);
  });

  it('count() of a missing array is 0; includes / in over an array field', () => {
    expect(select('preferences.categories.count() = 0')).toEqual([2, 3]);
    expect(select('preferences.categories.includes("hats")')).toEqual([1]);
    expect(select('"hats" in preferences.categories')).toEqual([1]);
    expect(select('"boots" notIn preferences.categories')).toEqual([1, 2]);
  });

  it('intersects / subsetOf / supersetOf / intersection / distinct', () => {
    expect(select('_tenant.tags.intersects(preferences.categories)')).toEqual([1]);
    expect(select('preferences.categories.subsetOf(["shoes", "hats"])')).toEqual([1, 2]);
    expect(select('_tenant.tags.subsetOf(preferences.categories)')).toEqual([1]);
    expect(select('preferences.categories.supersetOf(["shoes"])')).toEqual([1]);
    expect(select('preferences.categories.intersection(["shoes", "boots"]).count() = 1')).toEqual([1]);
    expect(select('preferences.categories.distinct().count() = 2')).toEqual([1]);
    expect(select('preferences.categories.head() = "shoes"')).toEqual([1]);
  });

  it('sum / average of a number array skip nulls', () => {
    expect(select('_tenant.scores.sum() = 3.5 and _tenant.scores.count() = 3')).toEqual([1]);
    expect(select('_tenant.scores.average() = 1.75')).toEqual([1]);
  });

  it('maps: get / keys / values', () => {
    expect(select('_tenant.prefs.get("a") = "John"')).toEqual([2]);
    expect(select('_tenant.prefs.get("b").isNull()')).toEqual([1, 2, 3]);
    expect(select('_tenant.prefs.keys().includes("k")')).toEqual([2]);
    expect(select('_tenant.prefs.values().count() = 1')).toEqual([3]);
  });
});

describe('lambdas, map values, mapEntry maps and groups (issue 18)', () => {
  beforeEach(() => {
    harness.load([
      p({ preferences: { categories: ['Shoes', 'hats', 'SHOES'] } }, [
        {
          at: NOW - 3 * H,
          channel: 'web',
          commerce: { order: { priceTotal: 10 } },
          productListItems: [
            { SKU: 'A', quantity: 2, priceTotal: 5 },
            { SKU: 'B', quantity: 1, priceTotal: 3 },
          ],
        },
        {
          at: NOW - 2 * H,
          channel: 'mobile',
          commerce: { order: { priceTotal: 20 } },
          productListItems: [{ SKU: 'A', quantity: 1, priceTotal: 7 }],
        },
        { at: NOW - H, type: 'web.pageview', channel: 'web', commerce: { order: { priceTotal: 30 } } },
      ]),
      p({ preferences: { categories: ['hats'] } }, [
        { at: NOW - H, channel: 'web' },
        { at: NOW - H / 2, commerce: { order: { priceTotal: 5 } } },
      ]),
      p({}),
    ]);
  });

  it('a lambda names the item of a per-item argument; bare names still read it', () => {
    // Purchases and the page view: profile 1 has an event of each type, 2 only purchases, 3 none.
    expect(select('xEvent.forall(e => e.eventType = "commerce.purchases")')).toEqual([2, 3]);
    // Profile 1's page view is on the web with 30; profile 2's web event has no total.
    expect(select('xEvent.filter(e => e.channel = "web" and commerce.order.priceTotal > 15).count() >= 1')).toEqual([
      1,
    ]);
    expect(select('xEvent.exists(e => e.productListItems.exists(i => i.SKU = "B"))')).toEqual([1]);
    // Per event 2·5 + 1·3 = 13 and 1·7 = 7: one event over 12.
    expect(select('xEvent[productListItems.map(i => i.quantity * i.priceTotal).sum() > 12].count() = 1')).toEqual([1]);
  });

  it('a.map(x => value): the present values, over events and arrays of values', () => {
    // (10 + 20 + 30) · 2 = 120 for profile 1; 5 · 2 = 10 for profile 2.
    expect(select('xEvent.map(e => e.commerce.order.priceTotal * 2).sum() > 50')).toEqual([1]);
    // WEB, MOBILE, WEB: two distinct; profile 2's second event has no channel.
    expect(select('xEvent.map(e => e.channel.upper()).distinct().count() = 2')).toEqual([1]);
    expect(select('xEvent.map(e => e.channel.upper()).count() = 1')).toEqual([2]);
    expect(select('preferences.categories.map(c => c.lower()).distinct().count() = 2')).toEqual([1]);
    expect(select('"hats" in preferences.categories.map(c => c.lower())')).toEqual([1, 2]);
    expect(select('preferences.categories.map(c => c.lower()).head() = "shoes"')).toEqual([1]);
  });

  it('mapEntry maps: the later entry of a key wins, keys keep their first place', () => {
    const byChannel = 'xEvent.map(e => mapEntry(e.channel, e.commerce.order.priceTotal))';
    // Profile 1: web 10, mobile 20, web 30; profile 2: web without a total, a total without a channel.
    expect(select(`${byChannel}.get("web") = 30`)).toEqual([1]);
    expect(select(`${byChannel}.get("web").isNull()`)).toEqual([2, 3]);
    expect(select(`${byChannel}.keys().head() = "web"`)).toEqual([1]);
    expect(select(`${byChannel}.keys() = ["mobile", "web"]`)).toEqual([1]);
    expect(select(`${byChannel}.values().head() = 30`)).toEqual([1]);
    expect(select(`${byChannel}.values().sum() = 50`)).toEqual([1]);
    expect(select(`${byChannel}.keys().count() = 0`)).toEqual([2, 3]);
    const lastOfType = 'xEvent.map(e => mapEntry(e.eventType, e.timestamp))';
    // The last purchase: profile 1's two hours ago, profile 2's half an hour ago.
    expect(select(`${lastOfType}.get("commerce.purchases") occurs <= 90 minutes before now`)).toEqual([2]);
    expect(select(`${lastOfType}.keys().count() = 1`)).toEqual([2]);
    expect(select(`${lastOfType}.get(preferences.categories.head()).isNull()`)).toEqual([1, 2, 3]);
  });

  it('as a whole definition, each of these arrays holds when it is non-empty', () => {
    // Profile 1 has three events, two with a total over 15; profile 2 two events, one with a channel.
    expect(select('xEvent.groupBy(eventType).values()')).toEqual([1, 2]);
    expect(select('xEvent.groupBy(channel).values()')).toEqual([1, 2]);
    expect(select('xEvent.map(e => e.channel)')).toEqual([1, 2]);
    expect(select('xEvent.map(channel)')).toEqual([1, 2]);
    expect(select('xEvent.filter(commerce.order.priceTotal > 15)')).toEqual([1]);
    expect(select('xEvent.filter(e => e.commerce.order.priceTotal > 15)')).toEqual([1]);
    expect(select('xEvent.map(e => mapEntry(e.channel, e.commerce.order.priceTotal)).keys()')).toEqual([1]);
    expect(select('preferences.categories.map(c => c.lower())')).toEqual([1, 2]);
  });

  it('keys keep the order they came in, whatever they look like', () => {
    harness.load([
      p({ preferences: { categories: ['x', '10', '2', '10'] } }),
      p({ preferences: { categories: ['2'] } }),
    ]);
    const firsts = 'preferences.categories.map(c => mapEntry(c, c.length()))';
    // A JS object would list "10" and "2" before "x".
    expect(select(`${firsts}.keys().head() = "x"`)).toEqual([1]);
    expect(select(`${firsts}.keys().head() = "2"`)).toEqual([2]);
    expect(select(`${firsts}.values().sum() = 4`)).toEqual([1]);
  });

  it('groupBy(path).values(): counted, or read group by group', () => {
    expect(select('xEvent.groupBy(eventType).values().count() = 2')).toEqual([1]);
    expect(select('xEvent.groupBy(eventType).values().exists(g => g.count() >= 2)')).toEqual([1, 2]);
    // Profile 1: purchases 10 + 20 = 30 and the page view 30.
    expect(select('xEvent.groupBy(eventType).values().map(g => g.sum(commerce.order.priceTotal)).min() = 30')).toEqual([
      1,
    ]);
    // Two web events for profile 1; profile 2's channel-less event is in no group.
    expect(select('xEvent.groupBy(channel).values().forall(g => g.count() = 1)')).toEqual([2, 3]);
    expect(select('xEvent.groupBy(eventType).values().sum(g => g.count()) = 3')).toEqual([1]);
  });
});

describe('hostile input', () => {
  it('binds a string literal that looks like SQL: it matches as text and the table survives', () => {
    const evil = "'; DROP TABLE profiles; --";
    harness.load([p({ person: { name: { firstName: evil } } }), p({ person: { name: { firstName: 'Ann' } } })]);
    const source = `person.name.firstName = ${JSON.stringify(evil)} or person.name.lastName.contains(${JSON.stringify(evil)})`;
    expect(select(source)).toEqual([1]);
    const { sql, params } = compileToSql(harness.check(source), { now: NOW, sandboxId: 1 });
    expect(sql).not.toContain('DROP');
    expect(params).toContain(evil);
    expect(harness.conn.sqlite.prepare('SELECT count(*) AS n FROM profiles').get()).toEqual({ n: 2 });
  });

  it('binds JSON paths too, quoting odd field names', () => {
    harness.load([p({ _tenant: { 'page-name': 'checkout' } }), p({ _tenant: { page: { name: 'checkout' } } })]);
    const { sql, params } = compileToSql(harness.check('_tenant.`page-name` = "checkout"'), { now: NOW, sandboxId: 1 });
    expect(params).toContain('$._tenant."page-name"');
    expect(sql).not.toContain('page-name');
    expect(select('_tenant.`page-name` = "checkout"')).toEqual([1]);
  });
});

describe('registered SQL functions', () => {
  it('are registered on every connection and map NULL to NULL', () => {
    const db = harness.conn.sqlite;
    for (const name of Object.keys(PQL_SQL_FUNCTIONS)) {
      if (name === 'pql_occurs') continue;
      const fn = PQL_SQL_FUNCTIONS[name]!;
      const args = Array.from({ length: fn.length }, () => 'NULL').join(', ');
      expect(db.prepare(`SELECT ${name}(${args}) AS v`).get(), name).toEqual({ v: null });
    }
  });

  it('run the shared runtime: Unicode case mapping, RE2, like, calendar', () => {
    const db = harness.conn.sqlite;
    const one = (sql: string, ...params: unknown[]) =>
      (db.prepare(`SELECT ${sql} AS v`).get(...(params as never[])) as { v: unknown }).v;
    expect(one('pql_lower(?)', 'İ')).toBe('i̇');
    expect(one('pql_upper(?)', 'ß')).toBe('SS');
    expect(one('pql_re_match(?, ?)', 'aaa', '(a+)+$')).toBe(1);
    expect(one('pql_re_group(?, ?, 1)', 'ann@example.se', '^(\\w+)@')).toBe('ann');
    expect(one('pql_like(?, ?)', '50%', '50\\%')).toBe(1);
    expect(one('pql_ms(?)', '2024-02-29T00:00:00.000Z')).toBe(Date.parse('2024-02-29T00:00:00.000Z'));
    expect(one('pql_age(?, ?)', '2000-02-29T00:00:00.000Z', Date.parse('2023-02-28T00:00:00.000Z'))).toBe(23);
    expect(one('pql_length(?)', 'a\u0000😀')).toBe(3);
  });
});
