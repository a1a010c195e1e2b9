import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS, type SchemaFieldRow } from '../../src/pql/check/catalog.js';
import { check } from '../../src/pql/check/checker.js';
import type { CheckedExpression, EventRecord, ProfileDocument, ResolvedAudience } from '../../src/pql/check/types.js';
import { eventRecord } from '../../src/pql/js/context.js';
import { evaluate, evaluateValue } from '../../src/pql/js/evaluate.js';
import { parse } from '../../src/pql/language/parser.js';
import { type OccursShape, occursMatches, parseIsoDatetime } from '../../src/pql/runtime/index.js';

const TEST_FIELDS: SchemaFieldRow[] = [
  { class: 'profile', path: '_tenant.score', type: 'number' },
  { class: 'profile', path: '_tenant.other', type: 'number' },
  { class: 'profile', path: '_tenant.nickname', type: 'string' },
  { class: 'profile', path: '_tenant.vip', type: 'boolean' },
  { class: 'profile', path: '_tenant.lastVisit', type: 'datetime' },
  { class: 'profile', path: '_tenant.tags', type: 'array<string>' },
  { class: 'profile', path: '_tenant.otherTags', type: 'array<string>' },
  { class: 'profile', path: '_tenant.scores', type: 'array<number>' },
  { class: 'profile', path: '_tenant.dates', type: 'array<datetime>' },
  { class: 'profile', path: '_tenant.prefs', type: 'map<string>' },
  { class: 'profile', path: '_tenant.orders', type: 'array<object>' },
  { class: 'profile', path: '_tenant.orders.total', type: 'number' },
  { class: 'profile', path: '_tenant.orders.sku', type: 'string' },
  { class: 'profile', path: '_tenant.orders.placedAt', type: 'datetime' },
  { class: 'profile', path: '_tenant.orders.lines', type: 'array<object>' },
  { class: 'profile', path: '_tenant.orders.lines.qty', type: 'number' },
  { class: 'profile', path: '_tenant.constructor', type: 'string' },
  // Declared but never present in the test profiles.
  { class: 'profile', path: '_tenant.missing', type: 'number' },
  { class: 'profile', path: '_tenant.missingTags', type: 'array<string>' },
  { class: 'profile', path: '_tenant.missingDate', type: 'datetime' },
  { class: 'event', path: '_tenant.points', type: 'number' },
];
const catalog = buildCatalog([...DEFAULT_SCHEMA_FIELDS, ...TEST_FIELDS]);
const AUDIENCES: ResolvedAudience[] = [
  { id: 7, name: 'VIP' },
  { id: 8, name: 'Churn risk' },
  {
    id: 9,
    name: 'CRM list',
    payload: { kind: 'object', fields: { tier: { kind: 'string' }, renewal: { kind: 'datetime' } } },
  },
];
const resolveAudience = (ref: string) => AUDIENCES.find((a) => a.name === ref || String(a.id) === ref);

const compiled = new Map<string, CheckedExpression>();
function checked(source: string): CheckedExpression {
  let c = compiled.get(source);
  if (c === undefined) {
    c = check(parse(source), source, { catalog, resolveAudience });
    compiled.set(source, c);
  }
  return c;
}

const ms = (text: string): number => parseIsoDatetime(text)!;
const NOW = ms('2024-03-15T12:00:00.000Z');
const DAY = 86_400_000;

interface EventSpec {
  at: string | number;
  type?: string;
  id?: number;
  [field: string]: unknown;
}

let nextEventId = 1;
function events(...specs: EventSpec[]): EventRecord[] {
  const list = specs.map(({ at, type = 'web.webpagedetails.pageViews', id, ...payload }) => ({
    id: id ?? nextEventId++,
    timestamp: typeof at === 'number' ? at : ms(at),
    eventType: type,
    payload,
  }));
  return list.sort((a, b) => a.timestamp - b.timestamp || a.id - b.id);
}

function profile(attributes: Record<string, unknown> = {}, evts: EventRecord[] = [], memberships: number[] = []) {
  return { attributes, events: evts, memberships: new Set(memberships) } satisfies ProfileDocument;
}

const EMPTY = profile();

function run(source: string, p: ProfileDocument = EMPTY, now = NOW): boolean {
  return evaluate(checked(source), p, { now });
}

function value(source: string, p: ProfileDocument = EMPTY, now = NOW): unknown {
  return evaluateValue(checked(source), p, { now });
}

const person = profile({
  person: { name: { firstName: 'Åsa', lastName: "O'Brien" }, birthDate: '1990-03-15T00:00:00.000Z', gender: 'f' },
  homeAddress: { countryCode: 'SE', city: 'Malmö' },
  loyalty: { tier: 'gold', points: 1200, joinDate: '2020-02-29T00:00:00.000Z' },
  preferences: { categories: ['shoes', 'bags'] },
  consents: { marketing: { email: true } },
  _tenant: {
    score: 7,
    other: 2,
    nickname: "'; DROP TABLE profiles; --",
    tags: ['a', 'b', 'b', 'c'],
    otherTags: ['b', 'c', 'd'],
    scores: [3, 1.5, 10, 4],
    dates: ['2024-03-01T00:00:00.000Z', 'not a date', '2023-01-01'],
    prefs: { color: 'blue', size: 'M' },
    lastVisit: '2024-03-14T08:00:00.000Z',
    orders: [
      { total: 50, sku: 'A', placedAt: '2024-03-01T10:00:00.000Z', lines: [{ qty: 1 }, { qty: 2 }] },
      { total: 250, sku: 'B', placedAt: '2024-02-01T10:00:00.000Z', lines: [{ qty: 5 }] },
      { total: 120, sku: 'C', placedAt: '2023-12-24T10:00:00.000Z', lines: [] },
      { sku: 'D' },
    ],
  },
});

describe('missing data', () => {
  it('distinguishes not (x = 1), x != 1 and x notIn [1] on a missing x', () => {
    expect(run('_tenant.score = 1')).toBe(false);
    expect(run('not (_tenant.score = 1)')).toBe(true);
    expect(run('!(_tenant.score = 1)')).toBe(true);
    expect(run('_tenant.score != 1')).toBe(false);
    expect(run('_tenant.score notIn [1]')).toBe(false);
    expect(run('_tenant.score in [1]')).toBe(false);
    expect(run('not (_tenant.score in [1])')).toBe(true);
  });

  it('evaluates the same forms on a present value', () => {
    const p = profile({ _tenant: { score: 2 } });
    expect(run('_tenant.score = 1', p)).toBe(false);
    expect(run('not (_tenant.score = 1)', p)).toBe(true);
    expect(run('_tenant.score != 1', p)).toBe(true);
    expect(run('_tenant.score notIn [1]', p)).toBe(true);
    expect(run('_tenant.score notIn [1, 2]', p)).toBe(false);
  });

  it('treats null like absent, and a value of the wrong runtime type as no match', () => {
    const p = profile({ _tenant: { score: null, nickname: 42, lastVisit: 'yesterday-ish' } });
    expect(run('_tenant.score.isNull()', p)).toBe(true);
    expect(run('_tenant.score != 1', p)).toBe(false);
    expect(run('_tenant.nickname = "42"', p)).toBe(false);
    expect(run('_tenant.nickname != "42"', p)).toBe(false);
    expect(run('_tenant.nickname.startsWith("4")', p)).toBe(false);
    expect(run('_tenant.nickname.doesNotStartWith("x")', p)).toBe(false);
    expect(run('_tenant.lastVisit occurs before now', p)).toBe(false);
    expect(run('not (_tenant.lastVisit occurs before now)', p)).toBe(true);
  });

  it('never throws on malformed documents', () => {
    const weird = profile({
      person: 'not an object',
      _tenant: { tags: 'abc', scores: { 0: 1 }, orders: [null, 3, 'x', { total: 'ten' }], prefs: ['x'] },
      homeAddress: { countryCode: ['SE'] },
    });
    const sources = [
      'person.name.firstName = "x"',
      '_tenant.tags.includes("a")',
      '_tenant.tags.count() = 0',
      '_tenant.scores.sum() = 0',
      '_tenant.orders.sum(total) = 0',
      '_tenant.orders[total > 1].count() = 0',
      '_tenant.prefs.get("x").isNull()',
      'homeAddress.countryCode in ["SE"]',
      'homeAddress.countryCode.length() > 0',
    ];
    const results = sources.map((s) => run(s, weird));
    expect(results).toEqual([false, false, true, true, true, true, true, false, false]);
  });

  it('reads only own fields, never the prototype', () => {
    const p = profile({ person: { name: {} } });
    expect(run('person.name.firstName.isNull()', p)).toBe(true);
    expect(run('_tenant.`constructor`.isNull()', profile({ _tenant: {} }))).toBe(true);
    expect(run('_tenant.`constructor`.isNull()', profile({ _tenant: { constructor: 'x' } }))).toBe(false);
  });
});

describe('comparison, arithmetic and logic', () => {
  it('compares numbers, strings by code point, and booleans', () => {
    expect(run('loyalty.points >= 1200 and loyalty.points < 1200.5', person)).toBe(true);
    expect(run('loyalty.tier = "gold" and loyalty.tier != "GOLD"', person)).toBe(true);
    expect(run('homeAddress.city > "Malmo"', person)).toBe(true);
    expect(run('consents.marketing.email = true', person)).toBe(true);
    expect(run('"😀" > "\uFFFD"')).toBe(true);
  });

  it('computes arithmetic with missing results for missing operands and zero divisors', () => {
    expect(value('_tenant.score * 2 + _tenant.other', person)).toBe(16);
    expect(value('_tenant.score / _tenant.other', person)).toBe(3.5);
    expect(value('_tenant.score % _tenant.other', person)).toBe(1);
    expect(value('-_tenant.score', person)).toBe(-7);
    expect(value('_tenant.score / 0', person)).toBeUndefined();
    expect(value('_tenant.score + _tenant.missing', person)).toBeUndefined();
    expect(run('_tenant.score / 0 = 0', person)).toBe(false);
    expect(run('not (_tenant.score / 0 = 0)', person)).toBe(true);
    expect(value('person.name.firstName + " " + person.name.lastName', person)).toBe("Åsa O'Brien");
    expect(value('1 + 2 * 3 - 4 / 2')).toBe(5);
  });

  it('applies and/or/not as two-valued logic', () => {
    expect(run('loyalty.tier = "gold" or _tenant.missing = 1', person)).toBe(true);
    expect(run('loyalty.tier = "gold" and not (loyalty.points < 100)', person)).toBe(true);
    expect(run('not (loyalty.tier = "gold" and loyalty.points < 100)', person)).toBe(true);
  });

  it('implements in / notIn over literals and paths', () => {
    expect(run('homeAddress.countryCode in ["SE", "NO"]', person)).toBe(true);
    expect(run('homeAddress.countryCode notIn ["SE", "NO"]', person)).toBe(false);
    expect(run('"b" in _tenant.tags', person)).toBe(true);
    expect(run('"z" notIn _tenant.tags', person)).toBe(true);
    expect(run('"z" notIn _tenant.missingTags.distinct()', person)).toBe(false);
  });

  it('compares a SQL-injection-looking literal as an ordinary string', () => {
    expect(run('_tenant.nickname = "\'; DROP TABLE profiles; --"', person)).toBe(true);
    expect(run('_tenant.nickname.contains("DROP TABLE")', person)).toBe(true);
    expect(run('"\'; DROP TABLE profiles; --" = "x"')).toBe(false);
  });

  it('evaluates if() lazily and let once', () => {
    expect(run('if(loyalty.tier = "gold", 2, 1) = 2', person)).toBe(true);
    expect(run('if(loyalty.tier = "silver", 2, 1) = 1', person)).toBe(true);
    expect(value('if(_tenant.missing = 1, 2, 1)', person)).toBe(1);
    expect(run('let S = (_tenant.orders.sum(total)) in (S > 100 and S < 1000)', person)).toBe(true);
    expect(value('let S = (_tenant.score) in (let T = (S * 2) in (S + T))', person)).toBe(21);
  });
});

describe('strings', () => {
  it('implements the predicates with caseSensitive, on non-ASCII text', () => {
    expect(run('person.name.firstName.equals("åsa", false)', person)).toBe(true);
    expect(run('person.name.firstName.equals("åsa")', person)).toBe(false);
    expect(run('person.name.firstName.equals("ÅSA", true)', person)).toBe(false);
    expect(run('"ÅSA".equals("åsa", false)')).toBe(true);
    expect(run('"ı".equals("I", false)')).toBe(false);
    expect(run('"İstanbul".startsWith("i", false)')).toBe(true);
    expect(run('"straße".upper() = "STRASSE"')).toBe(true);
    expect(run('homeAddress.city.startsWith("mal", false) and homeAddress.city.endsWith("ö")', person)).toBe(true);
    expect(run('homeAddress.city.contains("lm")', person)).toBe(true);
    expect(run('homeAddress.city.notEqualTo("Malmo")', person)).toBe(true);
    expect(run('homeAddress.city.doesNotStartWith("X")', person)).toBe(true);
    expect(run('homeAddress.city.doesNotEndWith("ö")', person)).toBe(false);
    expect(run('homeAddress.city.doesNotContain("x")', person)).toBe(true);
    expect(run('homeAddress.stateProvince.doesNotContain("x")', person)).toBe(false);
  });

  it('implements like, matches, regexGroup, length, lower and upper', () => {
    expect(run('homeAddress.city like "Mal%"', person)).toBe(true);
    expect(run('homeAddress.city like "M_lm_"', person)).toBe(true);
    expect(run('homeAddress.city like "mal%"', person)).toBe(false);
    expect(run('"50%" like "50\\\\%"')).toBe(true);
    expect(run('"500" like "50\\\\%"')).toBe(false);
    expect(run('homeAddress.city.matches("(?i)^MALMÖ$")', person)).toBe(true);
    expect(run('homeAddress.city.matches("^malmö$")', person)).toBe(false);
    expect(value('"order-2024-17".regexGroup("(\\\\d+)-(\\\\d+)", 2)')).toBe('17');
    expect(value('"nothing".regexGroup("(\\\\d+)", 1)')).toBeUndefined();
    expect(value('homeAddress.city.length()', person)).toBe(5);
    expect(value('"😀".length()')).toBe(1);
    expect(value('homeAddress.city.lower()', person)).toBe('malmö');
    expect(value('homeAddress.city.upper()', person)).toBe('MALMÖ');
  });

  it('runs a catastrophic regex over a 30,000-character value in bounded time', () => {
    const p = profile({ _tenant: { nickname: `${'a'.repeat(30_000)}b` } });
    const start = performance.now();
    expect(run('_tenant.nickname.matches("(a+)+$")', p)).toBe(false);
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

describe('arrays and maps', () => {
  it('implements the set functions', () => {
    expect(run('_tenant.tags.includes("b")', person)).toBe(true);
    expect(run('_tenant.tags.includes("z")', person)).toBe(false);
    expect(run('_tenant.tags.intersects(_tenant.otherTags)', person)).toBe(true);
    expect(run('_tenant.tags.intersects(["x"])', person)).toBe(false);
    expect(run('["b", "c"].subsetOf(_tenant.tags)', person)).toBe(true);
    expect(run('_tenant.tags.subsetOf(_tenant.otherTags)', person)).toBe(false);
    expect(run('_tenant.tags.supersetOf(["a", "c"])', person)).toBe(true);
    expect(value('_tenant.tags.intersection(_tenant.otherTags)', person)).toEqual(['b', 'c']);
    expect(value('_tenant.tags.distinct()', person)).toEqual(['a', 'b', 'c']);
    expect(run('_tenant.missingTags.subsetOf(_tenant.tags)', person)).toBe(false);
    expect(run('_tenant.tags.includes(_tenant.constructor)', person)).toBe(false);
  });

  it('counts, sums and averages, with 0 for a missing array', () => {
    expect(value('_tenant.tags.count()', person)).toBe(4);
    expect(value('_tenant.tags.count()')).toBe(0);
    expect(run('_tenant.tags.count() = 0')).toBe(true);
    expect(value('_tenant.scores.sum()', person)).toBe(18.5);
    expect(value('_tenant.scores.sum()')).toBe(0);
    expect(value('_tenant.scores.average()', person)).toBe(4.625);
    expect(value('_tenant.scores.average()')).toBeUndefined();
    expect(value('_tenant.scores.min()', person)).toBe(1.5);
    expect(value('_tenant.scores.max()', person)).toBe(10);
    expect(value('_tenant.scores.max()')).toBeUndefined();
  });

  it('aggregates a path of each item of an array of objects', () => {
    expect(value('_tenant.orders.sum(total)', person)).toBe(420);
    expect(value('_tenant.orders.average(total)', person)).toBe(140);
    expect(value('_tenant.orders.min(total)', person)).toBe(50);
    expect(value('_tenant.orders.max(total)', person)).toBe(250);
    expect(value('_tenant.orders.count()', person)).toBe(4);
    expect(value('_tenant.orders.head().sku', person)).toBe('A');
    expect(value('_tenant.tags.head()', person)).toBe('a');
    expect(value('_tenant.tags.head()')).toBeUndefined();
  });

  it('takes topN / bottomN, leaving out missing values and keeping ties in order', () => {
    const skus = (source: string, p = person) => (value(source, p) as { sku: string }[] | undefined)?.map((o) => o.sku);
    expect(skus('_tenant.orders.topN(total, 2)')).toEqual(['B', 'C']);
    expect(skus('_tenant.orders.bottomN(total, 5)')).toEqual(['A', 'C', 'B']);
    const ties = profile({
      _tenant: {
        orders: [
          { sku: 'x', total: 1 },
          { sku: 'y', total: 1 },
          { sku: 'z', total: 2 },
        ],
      },
    });
    expect(skus('_tenant.orders.topN(total, 3)', ties)).toEqual(['z', 'x', 'y']);
    expect(skus('_tenant.orders.bottomN(total, 2)', ties)).toEqual(['x', 'y']);
    expect(skus('_tenant.orders.topN(total, 0)', ties)).toEqual([]);
  });

  it('reads maps with get, keys and values', () => {
    expect(value('_tenant.prefs.get("color")', person)).toBe('blue');
    expect(value('_tenant.prefs.get("missing")', person)).toBeUndefined();
    expect(value('_tenant.prefs.keys()', person)).toEqual(['color', 'size']);
    expect(value('_tenant.prefs.values()', person)).toEqual(['blue', 'M']);
    expect(run('_tenant.prefs.keys().includes("size")', person)).toBe(true);
  });

  it('filters arrays of objects, nested, with exists / forall methods', () => {
    expect(value('_tenant.orders[total > 100].count()', person)).toBe(2);
    expect(value('_tenant.orders[lines[qty > 1].count() > 0].count()', person)).toBe(2);
    expect(run('_tenant.orders.exists(sku.equals("b", false))', person)).toBe(true);
    expect(run('_tenant.orders.forall(sku.isNotNull())', person)).toBe(true);
    expect(run('_tenant.orders.forall(total > 10)', person)).toBe(false);
    expect(run('_tenant.orders[total > 1000].forall(total < 0)', person)).toBe(true);
    expect(run('_tenant.orders[total > 1000].exists(total > 0)', person)).toBe(false);
    // ^ reaches the profile from inside the filter.
    expect(value('_tenant.orders[total > ^._tenant.score * 10].count()', person)).toBe(2);
    // ^^ from two filters deep.
    expect(value('_tenant.orders[lines[qty > ^^._tenant.other].count() > 0].count()', person)).toBe(1);
    // $1 is always the profile.
    expect(value('_tenant.orders[lines[qty > $1._tenant.other].count() > 0].count()', person)).toBe(1);
  });
});

describe('lambdas and the maps the engine builds (issue 18)', () => {
  const plain = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

  it('a.map(x => value): the present values of any expression, in order', () => {
    // Orders A, B, C total 50, 250, 120; D has no total, so it has no value.
    expect(value('_tenant.orders.map(o => o.total / 10)', person)).toEqual([5, 25, 12]);
    expect(value('_tenant.orders.map(total + lines.count())', person)).toEqual([52, 251, 120]);
    expect(value('_tenant.tags.map(t => t.upper())', person)).toEqual(['A', 'B', 'B', 'C']);
    // Datetimes come out as instants, like any datetime value.
    expect(value('_tenant.orders.map(o => o.placedAt).head()', person)).toBe(ms('2024-03-01T10:00:00.000Z'));
    expect(value('_tenant.orders.map(o => o.total / 10)')).toBeUndefined();
    expect(value('_tenant.orders.map(o => o.total / 10).count()')).toBe(0);
    // Bare names read the item and ^ the profile: score 7.
    expect(value('_tenant.orders.filter(o => total > ^._tenant.score * 10 and o.sku != "B").count()', person)).toBe(1);
  });

  it('mapEntry: the later entry of a key wins, the key keeps its first place, missing ones are left out', () => {
    const orders = profile({
      _tenant: {
        orders: [{ sku: '10', total: 1 }, { sku: 'x', total: 2 }, { sku: '10', total: 3 }, { sku: '2' }, { total: 4 }],
      },
    });
    const m = '_tenant.orders.map(o => mapEntry(o.sku, o.total))';
    expect(plain(value(m, orders))).toEqual({ 10: 3, x: 2 });
    expect(value(`${m}.keys()`, orders)).toEqual(['10', 'x']);
    expect(value(`${m}.values()`, orders)).toEqual([3, 2]);
    expect(value(`${m}.get("10")`, orders)).toBe(3);
    expect(value(`${m}.get("2")`, orders)).toBeUndefined();
    expect(value(`${m}.keys()`)).toBeUndefined();
  });

  it('groupBy: groups in order of first appearance, read through values()', () => {
    const visits = profile({
      _tenant: {
        orders: [
          { sku: 'x', total: 1 },
          { sku: '10', total: 2 },
          { sku: 'x', total: 3 },
        ],
      },
    });
    expect(value('_tenant.orders.groupBy(sku).values()', visits)).toEqual([
      [
        { sku: 'x', total: 1 },
        { sku: 'x', total: 3 },
      ],
      [{ sku: '10', total: 2 }],
    ]);
    expect(value('_tenant.orders.groupBy(sku).values().map(g => g.sum(total))', visits)).toEqual([4, 2]);
    expect(run('_tenant.orders.groupBy(sku).values().forall(g => g.count() < 3)', visits)).toBe(true);
    expect(value('_tenant.orders.groupBy(sku).values().count()', visits)).toBe(2);
  });
});

describe('date and time', () => {
  it('decomposes datetimes in UTC and reads now', () => {
    expect(value('person.birthDate.getYear()', person)).toBe(1990);
    expect(value('person.birthDate.getMonth()', person)).toBe(3);
    expect(value('person.birthDate.getDayOfMonth()', person)).toBe(15);
    expect(value('currentYear()')).toBe(2024);
    expect(value('currentMonth()')).toBe(3);
    expect(value('currentDayOfMonth()')).toBe(15);
    expect(value('date(2024, 2, 29)')).toBe(ms('2024-02-29T00:00:00.000Z'));
    expect(value('date("2024-02-29")')).toBe(ms('2024-02-29T00:00:00.000Z'));
    expect(value('datetime("2024-03-14T10:00:00+01:00")')).toBe(ms('2024-03-14T09:00:00.000Z'));
    expect(value('today')).toBe(ms('2024-03-15T00:00:00.000Z'));
    expect(value('yesterday')).toBe(ms('2024-03-14T00:00:00.000Z'));
    expect(value('tomorrow')).toBe(ms('2024-03-16T00:00:00.000Z'));
    expect(value('now')).toBe(NOW);
  });

  it('computes age on the birthday, the day before, and for Feb 29', () => {
    expect(value('age(person.birthDate)', person)).toBe(34);
    expect(value('age(person.birthDate)', person, ms('2024-03-14T23:59:59.999Z'))).toBe(33);
    expect(value('age(loyalty.joinDate)', person, ms('2023-02-28T00:00:00.000Z'))).toBe(3);
    expect(value('age(loyalty.joinDate)', person, ms('2023-02-27T23:59:59.999Z'))).toBe(2);
    expect(value('age(person.birthDate)')).toBeUndefined();
  });

  it('compares datetime paths with dates and reads arrays of datetimes', () => {
    expect(run('person.birthDate = date(1990, 3, 15)', person)).toBe(true);
    expect(run('person.birthDate < date("1990-03-16")', person)).toBe(true);
    expect(run('_tenant.dates.includes(date(2023, 1, 1))', person)).toBe(true);
    expect(value('_tenant.dates.count()', person)).toBe(2);
    expect(value('_tenant.orders.topN(placedAt, 1).head().sku', person)).toBe('A');
  });

  const at = (iso: string) => profile({ _tenant: { lastVisit: iso } });

  it('`occurs <= 7 days before now` at the boundary instant and 1 ms outside', () => {
    const src = '_tenant.lastVisit occurs <= 7 days before now';
    expect(run(src, at('2024-03-08T12:00:00.000Z'))).toBe(true);
    expect(run(src, at('2024-03-08T11:59:59.999Z'))).toBe(false);
    expect(run(src, at('2024-03-15T12:00:00.000Z'))).toBe(true);
    expect(run(src, at('2024-03-15T12:00:00.001Z'))).toBe(false);
    expect(run('_tenant.lastVisit occurs < 2 hours before now', at('2024-03-15T10:00:00.000Z'))).toBe(false);
    expect(run('_tenant.lastVisit occurs >= 30 days before now', at('2024-02-14T12:00:00.000Z'))).toBe(true);
  });

  it('`= 3 days before today` is the whole day three days ago', () => {
    const src = '_tenant.lastVisit occurs = 3 days before today';
    expect(run(src, at('2024-03-12T00:00:00.000Z'))).toBe(true);
    expect(run(src, at('2024-03-12T23:59:59.999Z'))).toBe(true);
    expect(run(src, at('2024-03-13T00:00:00.000Z'))).toBe(false);
    expect(run('_tenant.lastVisit occurs 3 days before today', at('2024-03-12T08:00:00.000Z'))).toBe(true);
  });

  it('`this month` when now is the 1st at 00:00:00.000', () => {
    const first = ms('2024-04-01T00:00:00.000Z');
    expect(run('_tenant.lastVisit occurs this month', at('2024-04-01T00:00:00.000Z'), first)).toBe(true);
    expect(run('_tenant.lastVisit occurs this month', at('2024-03-31T23:59:59.999Z'), first)).toBe(false);
    expect(run('_tenant.lastVisit occurs last month', at('2024-03-31T23:59:59.999Z'), first)).toBe(true);
    expect(run('_tenant.lastVisit occurs next month', at('2024-05-31T23:59:59.999Z'), first)).toBe(true);
  });

  it('`last week` across a year boundary', () => {
    const jan2 = ms('2025-01-02T09:00:00.000Z');
    expect(run('_tenant.lastVisit occurs last week', at('2024-12-23T00:00:00.000Z'), jan2)).toBe(true);
    expect(run('_tenant.lastVisit occurs last week', at('2024-12-29T23:59:59.999Z'), jan2)).toBe(true);
    expect(run('_tenant.lastVisit occurs last week', at('2024-12-30T00:00:00.000Z'), jan2)).toBe(false);
    expect(run('_tenant.lastVisit occurs this week', at('2024-12-30T00:00:00.000Z'), jan2)).toBe(true);
    expect(run('_tenant.lastVisit occurs this year', at('2024-12-30T00:00:00.000Z'), jan2)).toBe(false);
  });

  it("`between` with a date B includes all of B's day", () => {
    const src = '_tenant.lastVisit occurs between date(2024, 1, 1) and date(2024, 1, 31)';
    expect(run(src, at('2024-01-31T23:59:59.999Z'))).toBe(true);
    expect(run(src, at('2024-02-01T00:00:00.000Z'))).toBe(false);
    expect(run(src, at('2024-01-01T00:00:00.000Z'))).toBe(true);
    expect(run(src, at('2023-12-31T23:59:59.999Z'))).toBe(false);
    const instant = '_tenant.lastVisit occurs between date(2024, 1, 1) and datetime("2024-01-31T00:00:00Z")';
    expect(run(instant, at('2024-01-31T00:00:00.000Z'))).toBe(true);
    expect(run(instant, at('2024-01-31T00:00:00.001Z'))).toBe(false);
  });

  it('`on`, `today`, `before`, `after` and relative-after with a path reference', () => {
    expect(run('_tenant.lastVisit occurs on date(2024, 3, 14)', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs yesterday', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs today', person)).toBe(false);
    expect(run('_tenant.lastVisit occurs after date(2024, 3, 13)', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs after date(2024, 3, 14)', person)).toBe(false);
    expect(run('_tenant.lastVisit occurs after datetime("2024-03-14T00:00:00Z")', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs before today', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs <= 1 days after yesterday', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs >= 24 years after person.birthDate', person)).toBe(true);
    expect(run('_tenant.lastVisit occurs >= 35 years after person.birthDate', person)).toBe(false);
    expect(run('_tenant.lastVisit occurs <= 1 days after _tenant.missingDate', person)).toBe(false);
  });
});

describe('events', () => {
  const shopper = profile({ loyalty: { tier: 'gold' } }, [
    ...events(
      { at: '2024-03-14T10:00:00.000Z', type: 'commerce.purchases', commerce: { order: { priceTotal: 30 } } },
      {
        at: '2024-03-10T10:00:00.000Z',
        type: 'commerce.purchases',
        commerce: { order: { priceTotal: 70.5 } },
        productListItems: [{ SKU: 'S1', category: 'shoes', quantity: 2 }],
      },
      { at: '2024-03-01T10:00:00.000Z', type: 'commerce.purchases', commerce: { order: { priceTotal: 1000 } } },
      {
        at: '2024-03-15T09:00:00.000Z',
        type: 'web.webpagedetails.pageViews',
        web: { webPageDetails: { name: 'Home' } },
        _tenant: { points: 3 },
      },
    ),
  ]);

  it('counts and aggregates filtered events', () => {
    expect(value('xEvent.count()', shopper)).toBe(4);
    expect(value('xEvent[eventType = "commerce.purchases"].count()', shopper)).toBe(3);
    expect(
      run('xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now].count() >= 2', shopper),
    ).toBe(true);
    expect(value('xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal)', shopper)).toBe(1100.5);
    expect(value('xEvent.sum(commerce.order.priceTotal)', shopper)).toBe(1100.5);
    expect(value('xEvent.average(commerce.order.priceTotal)', shopper)).toBe(1100.5 / 3);
    expect(value('xEvent.min(commerce.order.priceTotal)', shopper)).toBe(30);
    expect(value('xEvent.max(commerce.order.priceTotal)', shopper)).toBe(1000);
    expect(value('xEvent[productListItems[category = "shoes"].count() > 0].count()', shopper)).toBe(1);
    expect(run('xEvent.exists(productListItems.exists(SKU.equals("s1", false)))', shopper)).toBe(true);
    expect(value('xEvent[eventType = "none"].count()', shopper)).toBe(0);
    expect(value('xEvent.count()')).toBe(0);
  });

  it('orders events by time and reads the earliest with head()', () => {
    expect(value('xEvent.head().commerce.order.priceTotal', shopper)).toBe(1000);
    expect(value('xEvent.head().timestamp', shopper)).toBe(ms('2024-03-01T10:00:00.000Z'));
    expect(value('xEvent.topN(timestamp, 1).head().eventType', shopper)).toBe('web.webpagedetails.pageViews');
  });

  it('reaches the profile with ^ from inside an event filter', () => {
    expect(value('xEvent[^.loyalty.tier = "gold" and eventType = "commerce.purchases"].count()', shopper)).toBe(3);
    expect(value('xEvent[^.loyalty.tier = "silver"].count()', shopper)).toBe(0);
  });

  it('implements exists / forall / select / aggregate with variables', () => {
    expect(run('exists E from xEvent where E.commerce.order.priceTotal > 500', shopper)).toBe(true);
    expect(run('exists E from xEvent: E.commerce.order.priceTotal > 5000', shopper)).toBe(false);
    expect(run('forall E from xEvent where E.timestamp occurs this month', shopper)).toBe(true);
    expect(run('forall E from xEvent where E.eventType = "commerce.purchases"', shopper)).toBe(false);
    expect(run('forall E from xEvent where E.eventType = "x"')).toBe(true);
    expect(run('exists E from xEvent where E.eventType = "x"')).toBe(false);
    // Inside the body, bare fields still read the profile.
    expect(
      run('exists E from xEvent where loyalty.tier = "gold" and E.eventType = "commerce.purchases"', shopper),
    ).toBe(true);
    expect(
      run(
        'exists E from xEvent, P from E.productListItems where P.quantity > 1 and E.timestamp occurs before now',
        shopper,
      ),
    ).toBe(true);
    expect(value('(select E from xEvent where E.commerce.order.priceTotal < 100).count()', shopper)).toBe(2);
    expect(
      value(
        'sum E.commerce.order.priceTotal over E from xEvent where E.timestamp occurs <= 7 days before now',
        shopper,
      ),
    ).toBe(100.5);
    expect(value('count E over E from xEvent where E.eventType = "commerce.purchases"', shopper)).toBe(3);
    expect(
      value('average E.commerce.order.priceTotal over E from xEvent where E.timestamp occurs today', shopper),
    ).toBe(undefined);
    expect(value('max E._tenant.points over E from xEvent where true', shopper)).toBe(3);
    expect(value('min E.commerce.order.priceTotal over E from xEvent where true', shopper)).toBe(30);
  });

  it('lets payload fields named like the columns lose to the columns', () => {
    const p = profile({}, [
      { id: 1, timestamp: NOW - 1000, eventType: 'real', payload: { eventType: 'fake', timestamp: 'x' } },
    ]);
    expect(run('xEvent[eventType = "real" and timestamp occurs today].count() = 1', p)).toBe(true);
  });

  it('sorts events given out of order by (timestamp, id)', () => {
    const p = profile({}, [
      { id: 9, timestamp: NOW - 10, eventType: 'second', payload: {} },
      { id: 2, timestamp: NOW - 10, eventType: 'first', payload: {} },
      { id: 1, timestamp: NOW - 5, eventType: 'third', payload: {} },
    ]);
    expect(value('xEvent.head().eventType', p)).toBe('first');
  });
});

describe('inSegment', () => {
  it('reads current memberships by audience name or id', () => {
    const member = profile({}, [], [7]);
    expect(run('inSegment("VIP")', member)).toBe(true);
    expect(run('inSegment("7")', member)).toBe(true);
    expect(run('inSegment("Churn risk")', member)).toBe(false);
    expect(run('not inSegment("Churn risk") and inSegment("VIP")', member)).toBe(true);
    expect(run('inSegment("VIP")')).toBe(false);
  });

  it("reads a field of a current member's row in an external audience; missing otherwise", () => {
    const row = { tier: 'gold', renewal: '2024-03-20T00:00:00.000Z' };
    const member = { ...profile({}, [], [9]), payloads: new Map([[9, row]]) };
    expect(value('inSegment("CRM list").payload.tier', member)).toBe('gold');
    expect(value('inSegment("9").payload.renewal', member)).toBe(ms('2024-03-20T00:00:00.000Z'));
    expect(run('inSegment("9").payload.renewal occurs <= 7 days after now', member)).toBe(true);
    // A row left behind by an exit is not read: only current members have one.
    const exited = { ...profile(), payloads: new Map([[9, row]]) };
    expect(value('inSegment("9").payload.tier', exited)).toBeUndefined();
    expect(run('inSegment("9").payload.tier != "gold"', exited)).toBe(false);
    expect(run('inSegment("9").payload.tier.isNull()', profile({}, [], [9]))).toBe(true);
  });
});

describe('CHAIN', () => {
  const seq = (...specs: EventSpec[]) => profile({}, events(...specs));
  const T = (minutes: number) => NOW - DAY + minutes * 60_000;
  const chain =
    'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view"), B: WHAT(eventType = "cart"), C: WHAT(eventType = "buy")])';

  it('finds an ordered sequence of distinct events', () => {
    expect(run(chain, seq({ at: T(0), type: 'view' }, { at: T(1), type: 'cart' }, { at: T(2), type: 'buy' }))).toBe(
      true,
    );
    expect(run(chain, seq({ at: T(0), type: 'cart' }, { at: T(1), type: 'view' }, { at: T(2), type: 'buy' }))).toBe(
      false,
    );
    expect(run(`not ${chain}`, seq({ at: T(0), type: 'view' }, { at: T(2), type: 'buy' }))).toBe(true);
    expect(run(chain)).toBe(false);
  });

  it('does not let tied timestamps be consecutive steps', () => {
    const tied = seq({ at: T(0), type: 'view', id: 1 }, { at: T(0), type: 'cart', id: 2 }, { at: T(2), type: 'buy' });
    expect(run(chain, tied)).toBe(false);
    const later = seq(
      { at: T(0), type: 'view', id: 1 },
      { at: T(0), type: 'cart', id: 2 },
      { at: T(1), type: 'cart' },
      { at: T(2), type: 'buy' },
    );
    expect(run(chain, later)).toBe(true);
  });

  it('does not let one event serve two steps', () => {
    const twice = 'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view"), B: WHAT(eventType = "view")])';
    expect(run(twice, seq({ at: T(0), type: 'view' }))).toBe(false);
    expect(run(twice, seq({ at: T(0), type: 'view' }, { at: T(1), type: 'view' }))).toBe(true);
  });

  it('backtracks when the greedy first choice fails but a later one succeeds', () => {
    const src =
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view"), B: WHAT(eventType = "buy") WHEN(<= 10 minutes after A)])';
    // The first view is too early for the buy; the second view works.
    const p = seq({ at: T(0), type: 'view' }, { at: T(50), type: 'view' }, { at: T(55), type: 'buy' });
    expect(run(src, p)).toBe(true);
    const none = seq({ at: T(0), type: 'view' }, { at: T(55), type: 'buy' });
    expect(run(src, none)).toBe(false);
  });

  it('checks WHEN against now and against earlier labels, not only the previous step', () => {
    const src =
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view") WHEN(<= 2 days before now), B: WHAT(eventType = "cart"), C: WHAT(eventType = "buy") WHEN(<= 1 hours after A)])';
    // A at 0, B at 30, C at 70 is more than an hour after A; A at 20 works.
    const p = seq(
      { at: T(0), type: 'view' },
      { at: T(20), type: 'view' },
      { at: T(30), type: 'cart' },
      { at: T(70), type: 'buy' },
    );
    expect(run(src, p)).toBe(true);
    const q = seq({ at: T(0), type: 'view' }, { at: T(30), type: 'cart' }, { at: T(70), type: 'buy' });
    expect(run(src, q)).toBe(false);
    // The WHEN on A against now.
    const old = seq({ at: NOW - 3 * DAY, type: 'view' }, { at: T(30), type: 'cart' }, { at: T(40), type: 'buy' });
    expect(run(src, old)).toBe(false);
  });

  it('does not reuse a failure when a later step depends on an earlier label than the previous one', () => {
    const src =
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view"), B: WHAT(eventType = "cart"), C: WHAT(eventType = "buy") WHEN(<= 10 minutes after A)])';
    // With A = the first view, B = the cart fails (the buy is 15 minutes later); with A = the
    // second view the same B succeeds.
    const p = seq(
      { at: T(0), type: 'view' },
      { at: T(6), type: 'view' },
      { at: T(8), type: 'cart' },
      { at: T(15), type: 'buy' },
    );
    expect(run(src, p)).toBe(true);
  });

  it('reads the profile and nested arrays in WHAT', () => {
    const src =
      'CHAIN(xEvent, timestamp, [A: WHAT(productListItems.exists(category = ^^.homeAddress.city)), B: WHAT(eventType = "buy")])';
    const p = profile({ homeAddress: { city: 'shoes' } }, [
      ...events({ at: T(0), type: 'view', productListItems: [{ category: 'shoes' }] }, { at: T(1), type: 'buy' }),
    ]);
    expect(run(src, p)).toBe(true);
  });

  it('searches long histories without blowing up', () => {
    const many: EventSpec[] = [];
    for (let i = 0; i < 400; i++) many.push({ at: T(i), type: 'view' });
    const src =
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view"), B: WHAT(eventType = "view") WHEN(<= 1 minutes after A), C: WHAT(eventType = "view") WHEN(<= 1 minutes after B), D: WHAT(eventType = "buy")])';
    const p = seq(...many);
    const start = performance.now();
    expect(run(src, p)).toBe(false);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('agreement with the runtime (properties)', () => {
  const UNITS = ['millisecond', 'second', 'minute', 'hour', 'day', 'week', 'month', 'year'] as const;
  const REFS = [
    { text: 'now', ms: NOW, day: false },
    { text: 'today', ms: NOW - (NOW % DAY), day: true },
    { text: 'yesterday', ms: NOW - (NOW % DAY) - DAY, day: true },
    { text: 'date(2024, 2, 29)', ms: ms('2024-02-29T00:00:00.000Z'), day: true },
    { text: 'datetime("2024-03-10T06:30:00Z")', ms: ms('2024-03-10T06:30:00.000Z'), day: false },
    { text: 'person.birthDate', ms: ms('2024-03-01T23:00:00.000Z'), day: false },
    { text: '_tenant.missingDate', ms: undefined, day: false },
  ];
  const ref = fc.constantFrom(...REFS);
  const tail = fc.oneof(
    fc
      .record({
        op: fc.constantFrom('=', '!=', '<', '<=', '>', '>=' as const),
        amount: fc.integer({ min: 0, max: 40 }),
        unit: fc.constantFrom(...UNITS),
        direction: fc.constantFrom('before', 'after' as const),
        ref,
      })
      .map(({ op, amount, unit, direction, ref }) => ({
        text: `${op} ${amount} ${unit}s ${direction} ${ref.text}`,
        shape: { form: 'relative', op, amount, unit, direction } as OccursShape,
        ref,
        to: undefined,
      })),
    fc.record({ direction: fc.constantFrom('before', 'after' as const), ref }).map(({ direction, ref }) => ({
      text: `${direction} ${ref.text}`,
      shape: { form: 'beforeAfter', direction } as OccursShape,
      ref,
      to: undefined,
    })),
    ref.map((ref) => ({ text: `on ${ref.text}`, shape: { form: 'on' } as OccursShape, ref, to: undefined })),
    fc
      .record({ which: fc.constantFrom('this', 'last', 'next' as const), unit: fc.constantFrom(...UNITS) })
      .map(({ which, unit }) => ({
        text: `${which} ${unit}`,
        shape: { form: 'period', which, unit } as OccursShape,
        ref: undefined,
        to: undefined,
      })),
    fc.record({ from: ref, to: ref }).map(({ from, to }) => ({
      text: `between ${from.text} and ${to.text}`,
      shape: { form: 'between' } as OccursShape,
      ref: from,
      to,
    })),
  );

  it('evaluates `occurs` exactly as occursMatches does', () => {
    fc.assert(
      fc.property(
        tail,
        fc.integer({ min: -60 * DAY, max: 60 * DAY }),
        fc.integer({ min: -3, max: 3 }),
        (t, offset, jitter) => {
          const at = NOW + offset + jitter;
          const p = profile({
            person: { birthDate: '2024-03-01T23:00:00.000Z' },
            _tenant: { lastVisit: new Date(at).toISOString() },
          });
          const expected = occursMatches(
            at,
            t.shape,
            t.ref?.ms,
            t.ref?.day ?? false,
            NOW,
            t.to?.ms,
            t.to?.day ?? false,
          );
          expect(run(`_tenant.lastVisit occurs ${t.text}`, p)).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  interface StepSpec {
    type: string | null;
    when: { kind: 'after'; op: '<=' | '>'; minutes: number; label: number } | { kind: 'now'; days: number } | null;
  }

  // Every injective assignment of events to steps, checked directly: the definition of CHAIN.
  function bruteForceChain(evts: EventRecord[], steps: StepSpec[]): boolean {
    const chosen: EventRecord[] = [];
    const used = new Set<number>();
    const go = (i: number): boolean => {
      if (i === steps.length) return true;
      const step = steps[i]!;
      for (const e of evts) {
        if (used.has(e.id)) continue;
        if (i > 0 && !(e.timestamp > chosen[i - 1]!.timestamp)) continue;
        if (step.type !== null && e.eventType !== step.type) continue;
        const w = step.when;
        if (w?.kind === 'now' && !(e.timestamp >= NOW - w.days * DAY && e.timestamp <= NOW)) continue;
        if (w?.kind === 'after') {
          const limit = chosen[w.label]!.timestamp + w.minutes * 60_000;
          if (w.op === '<=' && !(e.timestamp >= chosen[w.label]!.timestamp && e.timestamp <= limit)) continue;
          if (w.op === '>' && !(e.timestamp > limit)) continue;
        }
        chosen[i] = e;
        used.add(e.id);
        if (go(i + 1)) return true;
        used.delete(e.id);
      }
      return false;
    };
    return go(0);
  }

  it('finds a CHAIN exactly when brute-force enumeration does', () => {
    const step = (index: number) =>
      fc.record({
        type: fc.constantFrom('a', 'b', null),
        when:
          index === 0
            ? fc.oneof(
                fc.constant(null),
                fc.record({ kind: fc.constant('now' as const), days: fc.integer({ min: 0, max: 2 }) }),
              )
            : fc.oneof(
                fc.constant(null),
                fc.record({ kind: fc.constant('now' as const), days: fc.integer({ min: 0, max: 2 }) }),
                fc.record({
                  kind: fc.constant('after' as const),
                  op: fc.constantFrom('<=', '>' as const),
                  minutes: fc.integer({ min: 0, max: 30 }),
                  label: fc.integer({ min: 0, max: index - 1 }),
                }),
              ),
      });
    const stepsArb = fc
      .integer({ min: 1, max: 4 })
      .chain((k) => fc.tuple(...Array.from({ length: k }, (_, i) => step(i)))) as fc.Arbitrary<StepSpec[]>;
    const eventsArb = fc.array(
      fc.record({ minute: fc.integer({ min: 0, max: 12 }).map((m) => m * 5), type: fc.constantFrom('a', 'b') }),
      { maxLength: 9 },
    );
    fc.assert(
      fc.property(stepsArb, eventsArb, (steps, specs) => {
        const evts = events(...specs.map((e) => ({ at: NOW - DAY - 1000 + e.minute * 60_000 + 0, type: e.type })));
        const labels = steps.map((_, i) => `S${i}`);
        const text = steps
          .map((s, i) => {
            const what = s.type === null ? 'true' : `eventType = "${s.type}"`;
            const w = s.when;
            const when =
              w === null
                ? ''
                : w.kind === 'now'
                  ? ` WHEN(<= ${w.days} days before now)`
                  : ` WHEN(${w.op} ${w.minutes} minutes after ${labels[w.label]})`;
            return `${labels[i]}: WHAT(${what})${when}`;
          })
          .join(', ');
        expect(run(`CHAIN(xEvent, timestamp, [${text}])`, profile({}, evts))).toBe(bruteForceChain(evts, steps));
      }),
      { numRuns: 1500 },
    );
  });
});

describe('event records that are their own items (eventRecord)', () => {
  const specs: EventSpec[] = [
    { at: NOW - 3 * DAY, type: 'commerce.purchases', id: 901, _tenant: { points: 5 } },
    { at: NOW - 2 * DAY, type: 'commerce.purchases', id: 902, _tenant: { points: 7 } },
    { at: NOW - 2 * DAY, type: 'web.webpagedetails.pageViews', id: 903 },
    { at: NOW - DAY, type: 'commerce.purchases', id: 904, _tenant: { points: 11 } },
  ];
  const plain = events(...specs);
  const asItems = (list: EventRecord[]) => list.map((e) => eventRecord(e.id, e.timestamp, e.eventType, e.payload));
  const sources = [
    'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 2 days before now].count()',
    'xEvent[eventType = "commerce.purchases"].sum(_tenant.points)',
    'xEvent.head()._tenant.points',
    'xEvent.head().eventType',
  ];

  it('evaluates a list of them in order as it evaluates plain records', () => {
    for (const source of sources) {
      expect(value(source, profile({}, asItems(plain)))).toEqual(value(source, profile({}, plain)));
    }
  });

  it('puts a list of them out of order in (timestamp, id) order first', () => {
    // Reversed: the first event read must still be the earliest.
    const reversed = asItems(plain).reverse();
    expect(value('xEvent.head()._tenant.points', profile({}, reversed))).toBe(5);
    expect(value('xEvent.head().timestamp', profile({}, reversed))).toBe(NOW - 3 * DAY);
    for (const source of sources) {
      expect(value(source, profile({}, reversed))).toEqual(value(source, profile({}, plain)));
    }
  });

  it('serialises an event value as a plain record list does', () => {
    const source = 'xEvent[eventType = "commerce.purchases"]';
    expect(JSON.stringify(value(source, profile({}, asItems(plain))))).toBe(
      JSON.stringify(value(source, profile({}, plain))),
    );
  });

  // Payloads handed over as their JSON text (as a streaming window gets an ingest's events).
  const asTextItems = (list: EventRecord[]) =>
    list.map((e) => eventRecord(e.id, e.timestamp, e.eventType, JSON.stringify(e.payload)));

  it('evaluates and serialises payloads given as JSON text as it does objects', () => {
    for (const source of [...sources, 'xEvent[eventType = "commerce.purchases"]']) {
      expect(JSON.stringify(value(source, profile({}, asTextItems(plain))))).toBe(
        JSON.stringify(value(source, profile({}, plain))),
      );
    }
  });

  it('parses a payload given as text only when a condition reads it, and once', () => {
    const items = asTextItems(plain);
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(value(sources[0]!, profile({}, items))).toBe(2);
      expect(value('xEvent.head().eventType', profile({}, items))).toBe('commerce.purchases');
      expect(parse).not.toHaveBeenCalled();
      expect(value(sources[1]!, profile({}, items))).toBe(23);
      // The three purchases' payloads, read by the filter's sum; the page view's never.
      expect(parse).toHaveBeenCalledTimes(3);
      expect(value(sources[1]!, profile({}, items))).toBe(23);
      expect(parse).toHaveBeenCalledTimes(3);
    } finally {
      parse.mockRestore();
    }
  });
});
