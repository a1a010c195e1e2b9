/**
 * fast-check generators for the differential test: well-typed PQL text from a
 * grammar-directed generator over the test catalogue (differential-harness.ts), and profiles
 * with events and memberships whose values lean on the edges — missing fields and nulls,
 * timestamps on window and calendar boundaries around `now`, equal timestamps, non-ASCII
 * text whose UTF-16 order differs from code-point order, float sums that depend on order.
 */
import fc from 'fast-check';
import { AGGREGATE_FNS, COMPARE_OPS, TIME_WORDS } from '../../src/pql/language/vocabulary.js';
import { addUnits, dayStart, periodStart, toCanonicalIso } from '../../src/pql/runtime/index.js';
import { STRING_PREDICATES } from '../../src/pql/runtime/strings.js';
import type { MembershipStatus, TestEvent, TestProfile } from './differential-harness.js';

const H = 3_600_000;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------
// expressions

/** Where bare field names resolve: the profile, an event (inside xEvent[…]), a product item. */
type Where = 'profile' | 'event' | 'item';

interface Scope {
  where: Where;
  /** A quantifier variable `E` over events is in scope (profile scope only). */
  eventVar: boolean;
}

interface Fields {
  num: string[];
  str: string[];
  dt: string[];
  bool: string[];
  strArr: string[];
}

function fieldsOf(scope: Scope): Fields {
  switch (scope.where) {
    case 'profile': {
      const f: Fields = {
        num: ['loyalty.points', '_tenant.score'],
        str: [
          'person.name.firstName',
          'person.name.lastName',
          'homeAddress.countryCode',
          'homeAddress.city',
          'loyalty.tier',
          '_tenant.nickname',
          '_tenant.`page-name`',
        ],
        dt: ['person.birthDate', 'loyalty.joinDate', 'createdAt', '_tenant.lastVisit'],
        bool: ['consents.marketing.email', '_tenant.vip'],
        strArr: ['preferences.categories', '_tenant.tags'],
      };
      if (scope.eventVar) {
        f.num.push('E.commerce.order.priceTotal', 'E._tenant.rating');
        f.str.push('E.eventType', 'E.channel');
        f.dt.push('E.timestamp');
      }
      return f;
    }
    case 'event': {
      // Inside a lambda over the events (`xEvent.map(E => …)`), E names the event too.
      const named = scope.eventVar;
      return {
        num: [
          'commerce.order.priceTotal',
          '_tenant.rating',
          '^.loyalty.points',
          ...(named ? ['E._tenant.rating'] : []),
        ],
        str: [
          'eventType',
          'channel',
          'web.webPageDetails.name',
          'commerce.order.currencyCode',
          'marketing.campaignId',
          '$1.homeAddress.countryCode',
          '^.person.name.firstName',
          ...(named ? ['E.channel', 'E.eventType'] : []),
        ],
        dt: ['timestamp', '^.person.birthDate', ...(named ? ['E.timestamp'] : [])],
        bool: ['^.consents.marketing.email'],
        strArr: ['^.preferences.categories'],
      };
    }
    case 'item':
      return {
        num: ['quantity', 'priceTotal', '^.commerce.order.priceTotal', '^^.loyalty.points'],
        str: ['category', 'SKU', 'name', '^.eventType'],
        dt: ['^.timestamp'],
        bool: [],
        strArr: [],
      };
  }
}

export const STRINGS = [
  '',
  'a',
  'A',
  'ab',
  'John',
  'john',
  'JOHN',
  'Jo',
  'jo',
  'Anna',
  'Åsa',
  'åsa',
  'ß',
  'SS',
  'ss',
  'İ',
  'i̇',
  'ı',
  'I',
  'é',
  'É',
  'Ω',
  '😀',
  'a😀',
  '\uFFFF',
  '\u{10000}',
  '\uE000',
  'SE',
  'NO',
  'se',
  'gold',
  'Gold',
  'shoes',
  'Shoes',
  '%',
  '_',
  'a%b',
  'a_b',
  '\\',
  "'; DROP TABLE profiles; --",
  'x\ny',
  ' ',
  'commerce.purchases',
  'web.pageview',
  '\u212A',
  'Kelvin',
  'İk',
  'SKY',
  'a\u0000b',
];

/** A PQL string literal (escapes `\" \\ \n \t \uXXXX`). */
export function pqlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

const strLit = fc.constantFrom(...STRINGS).map(pqlString);
const numLit = fc.constantFrom(
  '0',
  '1',
  '2',
  '3',
  '5',
  '7',
  '10',
  '100',
  '1000',
  '0.5',
  '1.5',
  '0.1',
  '0.3',
  '-1',
  '-2.5',
  '1e3',
  '1e16',
);
const smallInt = fc.constantFrom('0', '1', '2', '3');
const LIKE_PATTERNS = ['J%', '%n', '_o%', '%', '', 'a\\%b', 'a\\_b', '%\\\\%', '_', '__', '%ß%', '%😀', 'S_', '%a%b%'];
const REGEXES = [
  '^J',
  '(?i)^jo',
  'n$',
  'a.c',
  '^$',
  '[0-9]+',
  'é',
  '(?i)ß',
  '^(\\w)(\\w)?',
  '(a|b)+',
  // Literal patterns (compiled to native string tests): escaped punctuation, both anchors, none.
  '^John$',
  'hn\\.?',
  '\\.com$',
  '50\\% off',
  'o',
  '',
];
const EVENT_TYPES = ['commerce.purchases', 'web.pageview', 'commerce.productViews', 'x'];
const eventTypeLit = fc.constantFrom(...EVENT_TYPES).map(pqlString);
const CATEGORIES = ['shoes', 'Shoes', 'hats', 'é', ''];
const UNITS = [
  'millisecond',
  'second',
  'minute',
  'hour',
  'hours',
  'day',
  'days',
  'week',
  'weeks',
  'month',
  'months',
  'year',
  'years',
];
const dateLit = fc.constantFrom(
  'date(2024, 2, 29)',
  'date(2024, 3, 1)',
  'date("2023-12-31")',
  'date(2000, 1, 1)',
  'date(1990, 3, 1)',
  'datetime("2024-02-29T13:45:30.123Z")',
  'datetime("2025-01-01T00:00:00+01:00")',
  'datetime("2026-11-28T09:30:00.000Z")',
);
const timeWord = fc.constantFrom(...TIME_WORDS);
const compareOp = fc.constantFrom(...COMPARE_OPS);
const caseArg = fc.constantFrom('', ', true', ', false');

const paren = (s: string) => `(${s})`;

/** Builds the generators; one per (kind, scope, depth), memoised so the tree of arbitraries stays small. */
export class PqlGenerator {
  private readonly memo = new Map<string, fc.Arbitrary<string>>();

  private cached(key: string, make: () => fc.Arbitrary<string>): fc.Arbitrary<string> {
    let arb = this.memo.get(key);
    if (arb === undefined) {
      arb = make();
      this.memo.set(key, arb);
    }
    return arb;
  }

  private key(kind: string, scope: Scope, depth: number): string {
    return `${kind}:${scope.where}:${scope.eventVar}:${depth}`;
  }

  /** A number-valued expression. */
  num(scope: Scope, depth: number): fc.Arbitrary<string> {
    return this.cached(this.key('num', scope, depth), () => {
      const f = fieldsOf(scope);
      const leaves: fc.WeightedArbitrary<string>[] = [
        { arbitrary: fc.constantFrom(...f.num), weight: 3 },
        { arbitrary: numLit, weight: 1 },
      ];
      if (depth <= 0) return fc.oneof(...leaves);
      const d = depth - 1;
      const n = this.num(scope, d);
      const options: fc.WeightedArbitrary<string>[] = [
        { arbitrary: fc.oneof(...leaves), weight: 6 },
        {
          arbitrary: fc
            .tuple(n, fc.constantFrom('+', '-', '*', '/', '%'), n)
            .map(([a, op, b]) => `${paren(a)} ${op} ${paren(b)}`),
          weight: 3,
        },
        { arbitrary: n.map((a) => `-${paren(a)}`), weight: 1 },
        { arbitrary: fc.tuple(this.bool(scope, d), n, n).map(([c, a, b]) => `if(${c}, ${a}, ${b})`), weight: 1 },
        { arbitrary: this.str(scope, d).map((s) => `${paren(s)}.length()`), weight: 1 },
        {
          arbitrary: fc
            .tuple(this.dt(scope, d), fc.constantFrom('getYear', 'getMonth', 'getDayOfMonth'))
            .map(([t, m]) => `${paren(t)}.${m}()`),
          weight: 1,
        },
        { arbitrary: fc.constantFrom('currentYear()', 'currentMonth()', 'currentDayOfMonth()'), weight: 1 },
        { arbitrary: this.dt(scope, d).map((t) => `age(${t})`), weight: 1 },
      ];
      if (f.strArr.length > 0) {
        options.push({ arbitrary: fc.constantFrom(...f.strArr).map((a) => `${a}.count()`), weight: 1 });
      }
      if (scope.where === 'profile') {
        options.push(
          {
            arbitrary: this.bool({ where: 'event', eventVar: false }, d).map((c) => `xEvent[${c}].count()`),
            weight: 3,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('sum', 'average', 'min', 'max'),
                this.bool({ where: 'event', eventVar: false }, d),
                fc.constantFrom('commerce.order.priceTotal', '_tenant.rating'),
              )
              .map(([fn, c, p]) => `xEvent[${c}].${fn}(${p})`),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('sum', 'average', 'min', 'max'),
                fc.constantFrom('commerce.order.priceTotal', '_tenant.rating'),
              )
              .map(([fn, p]) => `xEvent.${fn}(${p})`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom(...AGGREGATE_FNS),
                fc.constantFrom('E.commerce.order.priceTotal', 'E._tenant.rating', 'E'),
                this.bool({ where: 'profile', eventVar: true }, d),
              )
              .map(([fn, v, c]) =>
                paren(
                  `${fn} ${fn !== 'count' && v === 'E' ? 'E.commerce.order.priceTotal' : v} over E from xEvent where ${c}`,
                ),
              ),
            weight: 1,
          },
          {
            arbitrary: fc.constantFrom('sum', 'average', 'min', 'max', 'count').map((fn) => `_tenant.scores.${fn}()`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('topN', 'bottomN'),
                smallInt,
                fc.constantFrom('count()', 'sum(commerce.order.priceTotal)', 'head().commerce.order.priceTotal'),
              )
              .map(([fn, k, tail]) => `xEvent.${fn}(commerce.order.priceTotal, ${k}).${tail}`),
            weight: 1,
          },
        );
      }
      if (scope.where === 'event') {
        options.push(
          {
            arbitrary: this.bool({ where: 'item', eventVar: false }, d).map((c) => `productListItems[${c}].count()`),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(fc.constantFrom('sum', 'average', 'min', 'max'), fc.constantFrom('quantity', 'priceTotal'))
              .map(([fn, p]) => `productListItems.${fn}(${p})`),
            weight: 1,
          },
        );
      }
      return fc.oneof(...options);
    });
  }

  /** A string-valued expression. */
  str(scope: Scope, depth: number): fc.Arbitrary<string> {
    return this.cached(this.key('str', scope, depth), () => {
      const f = fieldsOf(scope);
      const leaves = fc.oneof({ arbitrary: fc.constantFrom(...f.str), weight: 3 }, { arbitrary: strLit, weight: 1 });
      if (depth <= 0) return leaves;
      const d = depth - 1;
      const s = this.str(scope, d);
      const options: fc.WeightedArbitrary<string>[] = [
        { arbitrary: leaves, weight: 8 },
        { arbitrary: fc.tuple(s, s).map(([a, b]) => `${paren(a)} + ${paren(b)}`), weight: 1 },
        { arbitrary: fc.tuple(s, fc.constantFrom('lower', 'upper')).map(([a, m]) => `${paren(a)}.${m}()`), weight: 2 },
        { arbitrary: fc.tuple(this.bool(scope, d), s, s).map(([c, a, b]) => `if(${c}, ${a}, ${b})`), weight: 1 },
        {
          arbitrary: fc
            .tuple(s, fc.constantFrom(['(a|b)+', 1], ['^(\\w)(\\w)?', 2], ['(?i)(o)', 1], ['[0-9]+', 0]))
            .map(([a, [re, n]]) => `${paren(a)}.regexGroup(${pqlString(re as string)}, ${n})`),
          weight: 1,
        },
      ];
      if (scope.where === 'profile') {
        options.push(
          {
            arbitrary: fc
              .constantFrom('a', 'b', 'k', 'key with space', 'é')
              .map((k) => `_tenant.prefs.get(${pqlString(k)})`),
            weight: 1,
          },
          { arbitrary: fc.constantFrom(...f.strArr).map((a) => `${a}.head()`), weight: 1 },
          { arbitrary: fc.constantFrom('eventType', 'channel').map((p) => `xEvent.head().${p}`), weight: 1 },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('topN', 'bottomN'),
                fc.constantFrom('commerce.order.priceTotal', 'timestamp', 'channel'),
                smallInt,
              )
              .map(([fn, k, n]) => `xEvent.${fn}(${k}, ${n}).head().eventType`),
            weight: 2,
          },
        );
      }
      return fc.oneof(...options);
    });
  }

  /** A datetime-valued expression. */
  dt(scope: Scope, depth: number): fc.Arbitrary<string> {
    return this.cached(this.key('dt', scope, depth), () => {
      const f = fieldsOf(scope);
      const leaves = fc.oneof(
        { arbitrary: fc.constantFrom(...f.dt), weight: 3 },
        { arbitrary: timeWord, weight: 1 },
        { arbitrary: dateLit, weight: 1 },
      );
      if (depth <= 0) return leaves;
      const d = depth - 1;
      const options: fc.WeightedArbitrary<string>[] = [
        { arbitrary: leaves, weight: 8 },
        {
          arbitrary: fc
            .tuple(this.bool(scope, d), this.dt(scope, d), this.dt(scope, d))
            .map(([c, a, b]) => `if(${c}, ${a}, ${b})`),
          weight: 1,
        },
      ];
      if (scope.where === 'profile') options.push({ arbitrary: fc.constant('xEvent.head().timestamp'), weight: 1 });
      return fc.oneof(...options);
    });
  }

  /** A reference after `occurs … before/after/on/between`: constant or per row. */
  private timeRef(scope: Scope, labels: readonly string[] = []): fc.Arbitrary<string> {
    const options: fc.Arbitrary<string>[] = [timeWord, dateLit, fc.constantFrom(...fieldsOf(scope).dt)];
    if (labels.length > 0) options.push(fc.constantFrom(...labels), fc.constantFrom(...labels));
    return fc.oneof(...options);
  }

  /** The tail after `occurs` (or inside WHEN). */
  occursTail(scope: Scope, labels: readonly string[] = []): fc.Arbitrary<string> {
    const ref = this.timeRef(scope, labels);
    // Calendar units (month, year) take whole amounts only.
    const amountUnit = fc.oneof(
      fc.tuple(fc.constantFrom('0', '1', '2', '3', '7', '30'), fc.constantFrom(...UNITS)),
      fc.tuple(fc.constant('1.5'), fc.constantFrom('hours', 'days', 'week')),
    );
    return fc.oneof(
      {
        arbitrary: fc
          .tuple(
            fc.constantFrom('<=', '<', '>=', '>', '=', '!=', ''),
            amountUnit,
            fc.constantFrom('before', 'after', 'from'),
            ref,
          )
          .map(([op, [n, u], dir, r]) => `${op ? `${op} ` : ''}${n} ${u} ${dir} ${r}`),
        weight: 6,
      },
      { arbitrary: fc.tuple(fc.constantFrom('before', 'after'), ref).map(([dir, r]) => `${dir} ${r}`), weight: 2 },
      { arbitrary: ref.map((r) => `on ${r}`), weight: 1 },
      { arbitrary: fc.constantFrom('today', 'yesterday', 'tomorrow'), weight: 1 },
      {
        arbitrary: fc
          .tuple(fc.constantFrom('this', 'last', 'next'), fc.constantFrom('day', 'week', 'month', 'year', 'hour'))
          .map(([w, u]) => `${w} ${u}`),
        weight: 2,
      },
      { arbitrary: fc.tuple(ref, ref).map(([a, b]) => `between ${a} and ${b}`), weight: 1 },
    );
  }

  /** A boolean expression. */
  bool(scope: Scope, depth: number): fc.Arbitrary<string> {
    return this.cached(this.key('bool', scope, depth), () => {
      const f = fieldsOf(scope);
      const n0 = this.num(scope, 0);
      const s0 = this.str(scope, 0);
      const atoms: fc.WeightedArbitrary<string>[] = [
        {
          arbitrary: fc.tuple(fc.constantFrom(...f.num), compareOp, numLit).map(([a, op, b]) => `${a} ${op} ${b}`),
          weight: 3,
        },
        {
          arbitrary: fc.tuple(fc.constantFrom(...f.str), compareOp, strLit).map(([a, op, b]) => `${a} ${op} ${b}`),
          weight: 3,
        },
        {
          arbitrary: fc
            .tuple(fc.constantFrom(...f.dt), fc.constantFrom('=', '!=', '<', '>='), fc.oneof(timeWord, dateLit))
            .map(([a, op, b]) => `${a} ${op} ${b}`),
          weight: 1,
        },
        {
          arbitrary: fc
            .tuple(fc.constantFrom(...f.str, ...f.num, ...f.dt, ...f.strArr), fc.constantFrom('isNull', 'isNotNull'))
            .map(([a, m]) => `${a}.${m}()`),
          weight: 1,
        },
        { arbitrary: fc.constant('true'), weight: 1 },
      ];
      if (f.bool.length > 0) {
        atoms.push(
          { arbitrary: fc.constantFrom(...f.bool), weight: 1 },
          {
            arbitrary: fc
              .tuple(fc.constantFrom(...f.bool), fc.constantFrom('=', '!='), fc.constantFrom('true', 'false'))
              .map(([a, op, b]) => `${a} ${op} ${b}`),
            weight: 1,
          },
        );
      }
      if (scope.where === 'event') atoms.push({ arbitrary: eventTypeLit.map((t) => `eventType = ${t}`), weight: 4 });
      if (depth <= 0) return fc.oneof(...atoms);
      const d = depth - 1;
      const b = this.bool(scope, d);
      const n = this.num(scope, d);
      const s = this.str(scope, d);
      const t = this.dt(scope, d);
      const options: fc.WeightedArbitrary<string>[] = [
        { arbitrary: fc.oneof(...atoms), weight: 4 },
        {
          arbitrary: fc
            .tuple(b, fc.constantFrom('and', 'or', 'AND', 'OR'), b)
            .map(([x, op, y]) => `${paren(x)} ${op} ${paren(y)}`),
          weight: 4,
        },
        { arbitrary: b.map((x) => `not ${paren(x)}`), weight: 2 },
        { arbitrary: fc.tuple(n, compareOp, n).map(([x, op, y]) => `${paren(x)} ${op} ${paren(y)}`), weight: 2 },
        { arbitrary: fc.tuple(s, compareOp, s).map(([x, op, y]) => `${paren(x)} ${op} ${paren(y)}`), weight: 2 },
        { arbitrary: fc.tuple(t, compareOp, t).map(([x, op, y]) => `${paren(x)} ${op} ${paren(y)}`), weight: 1 },
        {
          arbitrary: fc
            .tuple(
              s,
              fc.constantFrom('in', 'notIn'),
              fc.array(fc.oneof(strLit, strLit, fc.constant('null'), s0), { maxLength: 3 }),
            )
            .map(([x, op, list]) => `${paren(x)} ${op} [${list.join(', ')}]`),
          weight: 2,
        },
        {
          arbitrary: fc
            .tuple(n, fc.constantFrom('in', 'notIn'), fc.array(fc.oneof(numLit, n0), { maxLength: 3 }))
            .map(([x, op, list]) => `${paren(x)} ${op} [${list.join(', ')}]`),
          weight: 1,
        },
        {
          arbitrary: fc
            .tuple(t, fc.constantFrom('in', 'notIn'), fc.array(fc.oneof(timeWord, dateLit), { maxLength: 2 }))
            .map(([x, op, list]) => `${paren(x)} ${op} [${list.join(', ')}]`),
          weight: 1,
        },
        {
          arbitrary: fc
            .tuple(s, fc.constantFrom(...STRING_PREDICATES), fc.oneof(strLit, strLit, s0), caseArg)
            .map(([x, m, y, cs]) => `${paren(x)}.${m}(${y}${cs})`),
          weight: 4,
        },
        {
          arbitrary: fc.tuple(s, fc.constantFrom(...LIKE_PATTERNS)).map(([x, p]) => `${paren(x)} like ${pqlString(p)}`),
          weight: 2,
        },
        {
          arbitrary: fc.tuple(s, fc.constantFrom(...REGEXES)).map(([x, re]) => `${paren(x)}.matches(${pqlString(re)})`),
          weight: 1,
        },
        { arbitrary: fc.tuple(t, this.occursTail(scope)).map(([x, tail]) => `${paren(x)} occurs ${tail}`), weight: 4 },
        { arbitrary: fc.tuple(b, b, b).map(([c, x, y]) => `if(${c}, ${x}, ${y})`), weight: 1 },
        {
          arbitrary: fc
            .tuple(t, compareOp, fc.constantFrom('0', '1', '2', '23', '24', '30', '-1', '1.5', '100000000'))
            .map(([x, op, c]) => `age(${x}) ${op} ${c}`),
          weight: 1,
        },
        {
          arbitrary: fc
            .tuple(n, numLit, numLit)
            .map(([v, lo, hi]) => `let V = (${v}) in (V > ${lo} and (V < ${hi} or V = ${lo}))`),
          weight: 1,
        },
      ];
      if (f.strArr.length > 0) {
        const arr = fc.constantFrom(...f.strArr);
        const other = fc.oneof(
          arr,
          fc.array(strLit, { maxLength: 3 }).map((xs) => `[${xs.join(', ')}]`),
        );
        options.push(
          { arbitrary: fc.tuple(arr, fc.oneof(strLit, s0)).map(([a, v]) => `${a}.includes(${v})`), weight: 1 },
          {
            arbitrary: fc
              .tuple(arr, fc.constantFrom('intersects', 'subsetOf', 'supersetOf'), other)
              .map(([a, m, o]) => `${a}.${m}(${o})`),
            weight: 2,
          },
          {
            arbitrary: fc.tuple(s, fc.constantFrom('in', 'notIn'), arr).map(([x, op, a]) => `${paren(x)} ${op} ${a}`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(arr, other, fc.constantFrom('count() > 0', 'count() = 1', 'head() = "shoes"', 'includes("hats")'))
              .map(([a, o, tail]) => `${a}.intersection(${o}).${tail}`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(arr, fc.constantFrom('count() = 1', 'count() >= 2', 'head() = "shoes"'))
              .map(([a, tail]) => `${a}.distinct().${tail}`),
            weight: 1,
          },
          // Two arrays compared: equal as sets.
          {
            arbitrary: fc.tuple(arr, fc.constantFrom('=', '!='), other).map(([a, op, o]) => `${a} ${op} ${o}`),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(arr, other, fc.constantFrom('=', '!='), other)
              .map(([a, o, op, p]) => `${a}.intersection(${o}) ${op} ${p}`),
            weight: 1,
          },
        );
      }
      if (scope.where === 'profile') {
        const ev = this.bool({ where: 'event', eventVar: false }, d);
        const evVar = this.bool({ where: 'profile', eventVar: true }, d);
        options.push(
          {
            arbitrary: fc.tuple(ev, compareOp, smallInt).map(([c, op, k]) => `xEvent[${c}].count() ${op} ${k}`),
            weight: 4,
          },
          {
            arbitrary: fc.tuple(fc.constantFrom('exists', 'forall'), ev).map(([m, c]) => `xEvent.${m}(${c})`),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(fc.constantFrom('exists', 'forall'), evVar, fc.constantFrom('where', ':'))
              .map(([q, c, w]) => paren(`${q} E from xEvent ${w} ${c}`)),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(evVar, compareOp, smallInt)
              .map(([c, op, k]) => `(select E from xEvent where ${c}).count() ${op} ${k}`),
            weight: 1,
          },
          { arbitrary: this.chain(d), weight: 3 },
          { arbitrary: fc.constantFrom('"VIP"', '"2"', '"Newsletter"').map((a) => `inSegment(${a})`), weight: 2 },
          // A field of the profile's row in the external audience "Churn risk" (audience 2).
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('"Churn risk"', '"2"'),
                fc.constantFrom(
                  'tier = "gold"',
                  'tier != "gold"',
                  'tier in ["gold", "silver"]',
                  'tier.startsWith("g", false)',
                  'tier.isNull()',
                  'optedIn = true',
                  'optedIn',
                  'since occurs <= 30 days before now',
                  'since < now',
                  'since.isNotNull()',
                ),
              )
              .map(([a, tail]) => paren(`inSegment(${a}).payload.${tail}`)),
            weight: 2,
          },
          {
            arbitrary: fc.tuple(compareOp, numLit).map(([op, k]) => paren(`inSegment("2").payload.score ${op} ${k}`)),
            weight: 1,
          },
          // Shapes the SQL compiler turns into id sets (to-sql-sets.ts): tests of typed events that read
          // the payload (one grouped pass), two tests of one value, has-any counts.
          {
            arbitrary: fc
              .tuple(
                eventTypeLit,
                fc.constantFrom('count()', 'min(commerce.order.priceTotal)', 'max(commerce.order.priceTotal)'),
                compareOp,
                smallInt,
              )
              .map(([t, agg, op, k]) => `xEvent[eventType = ${t} and commerce.order.priceTotal > 1].${agg} ${op} ${k}`),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(
                eventTypeLit,
                fc.constantFrom('sum', 'max', 'count'),
                compareOp,
                smallInt,
                fc.constantFrom('and', 'or'),
                compareOp,
                fc.constantFrom('5', '20', '100'),
              )
              .map(
                ([t, fn, op1, k1, join, op2, k2]) =>
                  `(let S = (xEvent[eventType = ${t}].${fn}(${fn === 'count' ? '' : 'commerce.order.priceTotal'})) in (S ${op1} ${k1} ${join} S ${op2} ${k2}))`,
              ),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('"VIP"', '"2"'),
                eventTypeLit,
                fc.constantFrom('>= 1', '> 0', '= 0', '!= 0', '< 1'),
              )
              .map(([a, t, cmp]) => `(inSegment(${a}) and xEvent[eventType = ${t}].count() ${cmp})`),
            weight: 1,
          },
          {
            arbitrary: fc.constantFrom('a', 'k', 'é').map((k) => `_tenant.prefs.get(${pqlString(k)}).isNull()`),
            weight: 1,
          },
          {
            arbitrary: fc.constantFrom(
              '_tenant.prefs.keys().includes("a")',
              '_tenant.prefs.keys().head() = "k"',
              '_tenant.prefs.values().count() > 1',
              '_tenant.prefs.values().includes("John")',
              '_tenant.prefs.isNull()',
              'xEvent.head().isNull()',
              'xEvent[eventType = "x"].head().isNotNull()',
              '$1.loyalty.points > 5',
            ),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(eventTypeLit, fc.constantFrom('<', '<=', '='))
              .map(
                ([t, op]) =>
                  `(exists E from xEvent, F from xEvent where E.timestamp ${op} F.timestamp and E.eventType = ${t} and F.eventType != E.eventType)`,
              ),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(fc.constantFrom('exists', 'forall'), fc.constantFrom(...CATEGORIES), eventTypeLit)
              .map(
                ([q, c, t]) =>
                  `(${q} E from xEvent, I from E.productListItems where I.category = ${pqlString(c)} or E.eventType = ${t})`,
              ),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(
                evVar,
                fc.constantFrom('sum(commerce.order.priceTotal) > 1', 'count() = 2', 'head().eventType = "x"'),
              )
              .map(([c, tail]) => `(select E from xEvent where ${c}).${tail}`),
            weight: 1,
          },
          // Arrays as conditions mean non-empty (issue 18); `not` keeps the branches of if() boolean.
          { arbitrary: this.nonEmpty(d).map((a) => `not ${a}`), weight: 2 },
          { arbitrary: this.nonEmpty(d).map((a) => `(${a} and true)`), weight: 1 },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('<=', '<', '>='),
                fc.constantFrom('1', '2', '30'),
                fc.constantFrom('hours', 'days'),
              )
              .map(([op, k, u]) => `xEvent.timestamp occurs ${op} ${k} ${u} before now`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(eventTypeLit, fc.constantFrom('in', 'notIn'))
              .map(([t, op]) => `xEvent.eventType ${op} [${t}, "web.pageview"]`),
            weight: 1,
          },
          {
            arbitrary: fc.constantFrom('"commerce%"', '"%.%"', '"x"').map((p) => `xEvent.eventType like ${p}`),
            weight: 1,
          },
          // The projected values of a path through an array, as an array.
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom(
                  'xEvent.eventType.distinct().count()',
                  'xEvent.commerce.order.priceTotal.sum()',
                  'xEvent.commerce.order.priceTotal.max()',
                  'xEvent.commerce.order.priceTotal.count()',
                  'xEvent.commerce.order.priceTotal.distinct().count()',
                ),
                compareOp,
                fc.constantFrom('0', '1', '2', '20'),
              )
              .map(([v, op, k]) => `${v} ${op} ${k}`),
            weight: 2,
          },
          { arbitrary: eventTypeLit.map((t) => `xEvent.eventType.includes(${t})`), weight: 1 },
          // `a.filter(cond)` is `a[cond]`.
          {
            arbitrary: fc.tuple(ev, compareOp, smallInt).map(([c, op, k]) => `xEvent.filter(${c}).count() ${op} ${k}`),
            weight: 1,
          },
          // map, groupBy and array equality over the events.
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom(
                  'xEvent.map(eventType).distinct().count()',
                  'xEvent.map(commerce.order.priceTotal).sum()',
                  'xEvent.groupBy(eventType).keys().count()',
                  'xEvent.groupBy(channel).keys().count()',
                ),
                compareOp,
                smallInt,
              )
              .map(([v, op, k]) => `${v} ${op} ${k}`),
            weight: 2,
          },
          {
            arbitrary: fc
              .tuple(eventTypeLit, compareOp, smallInt)
              .map(([t, op, k]) => `xEvent.groupBy(eventType).get(${t}).count() ${op} ${k}`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('xEvent.map(eventType)', 'xEvent.eventType', 'xEvent.groupBy(eventType).keys()'),
                fc.constantFrom('=', '!='),
                fc.array(eventTypeLit, { maxLength: 3 }).map((xs) => `[${xs.join(', ')}]`),
              )
              .map(([a, op, b]) => `${a} ${op} ${b}`),
            weight: 2,
          },
          // A path through an array compared with a constant: some item's value.
          {
            arbitrary: fc
              .tuple(compareOp, fc.constantFrom('0', '5', '20', '100'), eventTypeLit)
              .map(([op, k, t]) => paren(`xEvent.commerce.order.priceTotal ${op} ${k} or xEvent.eventType = ${t}`)),
            weight: 2,
          },
          // A binding with its own where before the next binding filters that binding's items.
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('exists', 'forall'),
                evVar,
                fc.constantFrom(...CATEGORIES),
                fc.constantFrom('where', ':'),
              )
              .map(
                ([q, c, cat, w]) =>
                  `(${q} E from xEvent ${w} (${c}), I from E.productListItems where I.category = ${pqlString(cat)})`,
              ),
            weight: 2,
          },
        );
      }
      if (scope.where === 'profile') options.push({ arbitrary: fc.oneof(...this.lambdaForms(d)), weight: 6 });
      if (scope.where === 'event') {
        const item = this.bool({ where: 'item', eventVar: false }, d);
        options.push(
          { arbitrary: fc.oneof(...this.itemLambdaForms(d)), weight: 2 },
          { arbitrary: fc.tuple(item, smallInt).map(([c, k]) => `productListItems[${c}].count() > ${k}`), weight: 2 },
          { arbitrary: item.map((c) => `not productListItems[${c}]`), weight: 1 },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom(
                  'productListItems.category.distinct().count()',
                  'productListItems.quantity.sum()',
                  'productListItems.priceTotal.min()',
                ),
                compareOp,
                smallInt,
              )
              .map(([v, op, k]) => `${v} ${op} ${k}`),
            weight: 1,
          },
          {
            arbitrary: fc.constantFrom(...CATEGORIES).map((c) => `productListItems.category.includes(${pqlString(c)})`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(fc.constantFrom(...CATEGORIES), compareOp, smallInt)
              .map(([c, op, k]) => `productListItems.groupBy(category).get(${pqlString(c)}).sum(quantity) ${op} ${k}`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom(
                  'productListItems.map(quantity).sum()',
                  'productListItems.groupBy(category).keys().count()',
                ),
                compareOp,
                smallInt,
              )
              .map(([v, op, k]) => `${v} ${op} ${k}`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(
                fc.constantFrom('=', '!='),
                fc.array(fc.constantFrom(...CATEGORIES).map(pqlString), { maxLength: 3 }),
              )
              .map(([op, xs]) => `productListItems.map(category) ${op} [${xs.join(', ')}]`),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(fc.constantFrom(...CATEGORIES), compareOp, smallInt)
              .map(([c, op, k]) =>
                paren(`productListItems.category = ${pqlString(c)} and productListItems.quantity ${op} ${k}`),
              ),
            weight: 1,
          },
          {
            arbitrary: fc
              .tuple(fc.constantFrom('exists', 'forall'), item)
              .map(([m, c]) => `productListItems.${m}(${c})`),
            weight: 2,
          },
          {
            arbitrary: fc
              .constantFrom(...CATEGORIES)
              .map((c) => `productListItems.exists(category.equals(${pqlString(c)}, false))`),
            weight: 1,
          },
          {
            arbitrary: fc.constantFrom(
              'productListItems.isNull()',
              'productListItems.isNotNull()',
              'productListItems.count() = 0',
            ),
            weight: 1,
          },
          { arbitrary: eventTypeLit.map((x) => `eventType in [${x}, "web.pageview"]`), weight: 2 },
          {
            arbitrary: fc.constantFrom(
              'productListItems.head().category = "shoes"',
              'productListItems.head().isNull()',
              'productListItems.topN(priceTotal, 1).head().quantity > 1',
              'productListItems[^^.loyalty.points > quantity].count() > 0',
            ),
            weight: 1,
          },
        );
      }
      return fc.oneof(...options);
    });
  }

  /**
   * Lambdas (issue 18) at the top: over the events, `E` names the event and bare names are its
   * fields too; `a.map(E => value)`, maps of `mapEntry`, the groups of a `groupBy`, and lambdas
   * over arrays of values.
   */
  private lambdaForms(d: number): fc.WeightedArbitrary<string>[] {
    const named: Scope = { where: 'event', eventVar: true };
    const b = this.bool(named, d);
    const n = this.num(named, d);
    const s = this.str(named, d);
    const agg = fc.constantFrom('sum()', 'max()', 'min()', 'count()', 'average()');
    const key = fc.constantFrom(
      'E.channel',
      'E.eventType',
      'channel',
      'marketing.campaignId',
      'E.channel.lower()',
      'E.web.webPageDetails.name',
    );
    const keyLit = fc.constantFrom('"web"', '"Web"', '"commerce.purchases"', '"c1"', '"é"', '"x"');
    const read = fc.oneof(
      fc.tuple(keyLit, compareOp, smallInt).map(([k, op, v]) => `get(${k}) ${op} ${v}`),
      keyLit.map((k) => `get(${k}).isNull()`),
      fc.tuple(compareOp, smallInt).map(([op, v]) => `keys().count() ${op} ${v}`),
      keyLit.map((k) => `keys().head() = ${k}`),
      keyLit.map((k) => `keys().includes(${k})`),
      fc.tuple(compareOp, smallInt).map(([op, v]) => `values().sum() ${op} ${v}`),
      fc.tuple(compareOp, smallInt).map(([op, v]) => `values().head() ${op} ${v}`),
      fc.tuple(compareOp, smallInt).map(([op, v]) => `values().count() ${op} ${v}`),
    );
    const groupKey = fc.constantFrom('eventType', 'channel', 'E => E.channel');
    return [
      {
        arbitrary: fc.tuple(fc.constantFrom('exists', 'forall'), b).map(([m, c]) => `xEvent.${m}(E => ${c})`),
        weight: 2,
      },
      {
        arbitrary: fc.tuple(b, compareOp, smallInt).map(([c, op, k]) => `xEvent.filter(E => ${c}).count() ${op} ${k}`),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(n, agg, compareOp, smallInt)
          .map(([v, a, op, k]) => `xEvent.map(E => ${v}).${a} ${op} ${k}`),
        weight: 2,
      },
      {
        arbitrary: fc
          .tuple(s, fc.constantFrom('distinct().count() > 1', 'count() = 2', 'head() = "web"', 'includes("WEB")'))
          .map(([v, tail]) => `xEvent.map(E => ${v}).${tail}`),
        weight: 1,
      },
      { arbitrary: fc.tuple(strLit, s).map(([x, v]) => `${x} in xEvent.map(E => ${v})`), weight: 1 },
      // A map built with mapEntry: numbers, strings or datetimes as values.
      {
        arbitrary: fc.tuple(key, n, read).map(([k, v, r]) => `xEvent.map(E => mapEntry(${k}, ${v})).${r}`),
        weight: 2,
      },
      {
        arbitrary: fc
          .tuple(key, keyLit, fc.constantFrom('occurs <= 2 days before now', '< now', '.isNull()'))
          .map(
            ([k, g, t]) => `xEvent.map(E => mapEntry(${k}, E.timestamp)).get(${g})${t.startsWith('.') ? t : ` ${t}`}`,
          ),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(key, s, keyLit)
          .map(([k, v, g]) => `xEvent.map(E => mapEntry(${k}, ${v})).values().includes(${g})`),
        weight: 1,
      },
      // The groups of a groupBy.
      {
        arbitrary: fc
          .tuple(groupKey, compareOp, smallInt)
          .map(([g, op, k]) => `xEvent.groupBy(${g}).values().count() ${op} ${k}`),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(groupKey, fc.constantFrom('exists', 'forall'), compareOp, smallInt)
          .map(([g, m, op, k]) => `xEvent.groupBy(${g}).values().${m}(G => G.count() ${op} ${k})`),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(
            groupKey,
            fc.constantFrom('sum', 'max', 'min'),
            // Inside G[…] `^` is the group (the lambda's item), so the profile is `^^`.
            fc.oneof(
              eventTypeLit.map((t) => `eventType = ${t}`),
              fc.constantFrom(
                'commerce.order.priceTotal > 1',
                'timestamp occurs <= 2 days before now',
                '^^.loyalty.points > commerce.order.priceTotal',
                'channel.isNull()',
              ),
            ),
            compareOp,
            smallInt,
          )
          .map(([g, fn, c, op, k]) => `xEvent.groupBy(${g}).values().${fn}(G => G[${c}].count()) ${op} ${k}`),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(groupKey, fc.constantFrom('max()', 'min()', 'sum()', 'count()'), compareOp, smallInt)
          .map(
            ([g, a, op, k]) =>
              `xEvent.groupBy(${g}).values().map(G => G.sum(commerce.order.priceTotal)).${a} ${op} ${k}`,
          ),
        weight: 1,
      },
      // Lambdas over arrays of values, whose items have no fields.
      {
        arbitrary: fc
          .tuple(fc.constantFrom('preferences.categories', '_tenant.tags'), strLit, fc.constantFrom('exists', 'forall'))
          .map(([a, x, m]) => `${a}.${m}(T => T.lower() = ${x} or T.startsWith("s"))`),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(fc.constantFrom('preferences.categories', '_tenant.tags'), strLit)
          .map(([a, x]) => `${a}.map(T => T.upper()).includes(${x})`),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(compareOp, smallInt, agg, compareOp, smallInt)
          .map(
            ([op1, k1, a, op2, k2]) => `_tenant.scores.filter(S => S ${op1} ${k1}).map(S => S * 2).${a} ${op2} ${k2}`,
          ),
        weight: 1,
      },
    ];
  }

  /** Lambdas over an event's items (`I` names the item, `^` is the event). */
  private itemLambdaForms(d: number): fc.WeightedArbitrary<string>[] {
    const item = this.bool({ where: 'item', eventVar: false }, d);
    return [
      {
        arbitrary: fc
          .tuple(
            fc.constantFrom(
              'I.quantity * I.priceTotal',
              'I.quantity + ^.commerce.order.priceTotal',
              'if(I.category = "shoes", 1, 0)',
            ),
            compareOp,
            smallInt,
          )
          .map(([v, op, k]) => `productListItems.map(I => ${v}).sum() ${op} ${k}`),
        weight: 1,
      },
      { arbitrary: item.map((c) => `productListItems.exists(I => ${c} and I.SKU != "x")`), weight: 1 },
      {
        arbitrary: fc
          .tuple(fc.constantFrom(...CATEGORIES), compareOp, smallInt)
          .map(
            ([c, op, k]) =>
              `productListItems.map(I => mapEntry(I.category, I.quantity)).get(${pqlString(c)}) ${op} ${k}`,
          ),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(compareOp, smallInt)
          .map(([op, k]) => `productListItems.groupBy(category).values().max(G => G.sum(quantity)) ${op} ${k}`),
        weight: 1,
      },
    ];
  }

  /** CHAIN of 2–3 steps with optional WHEN, labels referring to earlier steps. */
  chain(depth: number): fc.Arbitrary<string> {
    const profile: Scope = { where: 'profile', eventVar: false };
    const what = fc.oneof(
      { arbitrary: eventTypeLit.map((t) => `eventType = ${t}`), weight: 3 },
      { arbitrary: this.bool({ where: 'event', eventVar: false }, Math.max(0, depth - 1)), weight: 1 },
    );
    const labelTail = (labels: string[]) =>
      fc.oneof(
        {
          arbitrary: fc
            .tuple(
              fc.constantFrom('<=', '<', '>=', '>', '=', ''),
              fc.constantFrom('0', '1', '2', '30'),
              fc.constantFrom('hours', 'days', 'minute', 'month', 'week'),
              fc.constantFrom(...labels),
            )
            .map(([op, k, u, l]) => `${op ? `${op} ` : ''}${k} ${u} after ${l}`),
          weight: 4,
        },
        { arbitrary: fc.constantFrom(...labels).map((l) => `after ${l}`), weight: 1 },
        { arbitrary: fc.constantFrom(...labels).map((l) => `on ${l}`), weight: 1 },
        { arbitrary: fc.constantFrom(...labels).map((l) => `between ${l} and now`), weight: 1 },
        { arbitrary: this.occursTail(profile, labels), weight: 2 },
      );
    // WHERE(…) and COUNT(n) (issue 18), in either order before or after WHEN.
    const extra = fc.oneof(
      { arbitrary: fc.constant(''), weight: 4 },
      { arbitrary: fc.constantFrom(' COUNT(2)', ' COUNT(1)', ' count(3)'), weight: 1 },
      { arbitrary: what.map((w) => ` WHERE(${w})`), weight: 1 },
      { arbitrary: what.map((w) => ` COUNT(2) where(${w})`), weight: 1 },
    );
    const step = (label: string, labels: string[]) =>
      fc
        .tuple(
          what,
          fc.option(labels.length > 0 ? labelTail(labels) : this.occursTail(profile), { nil: undefined }),
          fc.constantFrom('WHAT', 'what'),
          extra,
          fc.boolean(),
        )
        .map(([w, when, kw, more, whenFirst]) => {
          const whenText = when === undefined ? '' : ` WHEN(${when})`;
          return `${label}: ${kw}(${w})${whenFirst ? whenText + more : more + whenText}`;
        });
    return fc.oneof(
      fc.tuple(step('A', []), step('B', ['A'])).map((steps) => `CHAIN(xEvent, timestamp, [${steps.join(', ')}])`),
      fc
        .tuple(step('A', []), step('B', ['A']), step('C', ['A', 'B']))
        .map((steps) => `CHAIN(xEvent, timestamp, [${steps.join(', ')}])`),
      fc.tuple(step('A', []), step('B', ['A'])).map((steps) => `not CHAIN(xEvent, timestamp, [${steps.join(', ')}])`),
    );
  }

  /** A top-level segment definition. */
  definition(depth = 3): fc.Arbitrary<string> {
    const condition = this.bool({ where: 'profile', eventVar: false }, depth);
    // A whole definition may be an array: it holds when the array is non-empty.
    // The documented lambda form names the profile.
    const lambda = fc
      .tuple(this.bool({ where: 'profile', eventVar: false }, depth - 1), smallInt)
      .map(([c, k]) => `(P) => P.loyalty.points >= ${k} or P.homeAddress.countryCode = "SE" and ${paren(c)}`);
    return fc.oneof(
      { arbitrary: condition, weight: 9 },
      { arbitrary: this.nonEmpty(depth - 1), weight: 1 },
      { arbitrary: lambda, weight: 1 },
      // The groups of a groupBy are an array too, but only a value at the top.
      {
        arbitrary: fc.constantFrom(
          'xEvent.groupBy(channel).values()',
          'xEvent[eventType = "x"].groupBy(eventType).values()',
        ),
        weight: 1,
      },
    );
  }

  /** Arrays written where a condition goes (they mean "non-empty"): a filter, a select, a plain array. */
  nonEmpty(depth: number): fc.Arbitrary<string> {
    const ev = this.bool({ where: 'event', eventVar: false }, depth);
    const evVar = this.bool({ where: 'profile', eventVar: true }, depth);
    return fc.oneof(
      { arbitrary: ev.map((c) => `xEvent[${c}]`), weight: 2 },
      { arbitrary: evVar.map((c) => `(select E from xEvent where ${c})`), weight: 1 },
      // Shorthands the checker runs in another form (filter, map) are arrays as conditions too.
      { arbitrary: ev.map((c) => `xEvent.filter(${c})`), weight: 1 },
      {
        arbitrary: fc.constantFrom(
          'xEvent.map(channel)',
          'xEvent.map(E => E.commerce.order.priceTotal * 2)',
          'xEvent.map(E => mapEntry(E.channel, E.timestamp)).keys()',
          'preferences.categories.map(T => T.lower())',
        ),
        weight: 1,
      },
      {
        arbitrary: fc.constantFrom('preferences.categories', 'preferences.categories.distinct()', 'xEvent'),
        weight: 1,
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// data

/** Evaluation instants with calendar edges: a leap day, a month end, a Monday midnight, a year end. */
export const NOWS = [
  '2024-02-29T13:45:30.123Z',
  '2026-01-31T23:59:59.999Z',
  '2024-03-04T00:00:00.000Z',
  '2025-12-31T12:00:00.000Z',
].map((s) => Date.parse(s));

/** Instants around `now` where windows and calendar periods begin and end. */
export function boundaryInstants(now: number): number[] {
  const today = dayStart(now);
  const out = [
    now,
    now - 1,
    now + 1,
    now - H,
    now - 2 * H,
    now - DAY,
    now - DAY + 1,
    now - 7 * DAY,
    now - 7 * DAY - 1,
    now - 30 * DAY,
    now + H,
    now + DAY,
    today,
    today - 1,
    today - DAY,
    today + DAY,
    today + DAY - 1,
    today - 3 * DAY,
    periodStart(now, 'week'),
    periodStart(now, 'week') - 1,
    periodStart(now, 'month'),
    periodStart(now, 'month') - 1,
    addUnits(periodStart(now, 'month'), 'month', 1),
    periodStart(now, 'year'),
    addUnits(now, 'month', -1),
    addUnits(now, 'year', -1),
    addUnits(now, 'year', -30),
    addUnits(now, 'year', -30) + 1,
    Date.parse('2000-02-29T00:00:00.000Z'),
    Date.parse('1990-03-01T00:00:00.000Z'),
    Date.parse('2024-02-29T00:00:00.000Z'),
    Date.parse('2024-03-01T00:00:00.000Z'),
    Date.parse('2023-12-31T23:59:59.999Z'),
  ];
  return out;
}

const NUMBERS = [
  0,
  1,
  -1,
  2,
  3,
  5,
  7,
  10,
  100,
  1000,
  0.1,
  0.2,
  0.3,
  0.5,
  1.5,
  -2.5,
  1e-9,
  1e16,
  -1e16,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 62,
  1e308,
  -1e308,
  123.456,
];

type Maybe<T> = T | null | undefined;

function maybe<T>(arb: fc.Arbitrary<T>, present = 5): fc.Arbitrary<Maybe<T>> {
  return fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 2 },
    { arbitrary: fc.constant(null), weight: 1 },
    { arbitrary: arb, weight: present },
  );
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  if (value === undefined) return;
  const parts = path.split('.');
  let obj = target;
  for (const part of parts.slice(0, -1)) {
    const next = obj[part];
    if (next === null) return; // a null parent hides everything below it
    if (typeof next !== 'object') obj[part] = {};
    obj = obj[part] as Record<string, unknown>;
  }
  obj[parts[parts.length - 1]!] = value;
}

const str = fc.oneof(
  { arbitrary: fc.constantFrom(...STRINGS), weight: 5 },
  { arbitrary: fc.string({ maxLength: 4, unit: 'grapheme' }), weight: 1 },
);
const num = fc.oneof(
  { arbitrary: fc.constantFrom(...NUMBERS), weight: 5 },
  { arbitrary: fc.integer({ min: -50, max: 50 }), weight: 2 },
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), weight: 1 },
);

function instant(now: number): fc.Arbitrary<number> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...boundaryInstants(now)), weight: 5 },
    { arbitrary: fc.integer({ min: now - 400 * DAY, max: now + 10 * DAY }), weight: 1 },
  );
}

function iso(now: number): fc.Arbitrary<string> {
  return instant(now).map(toCanonicalIso);
}

function attributes(now: number): fc.Arbitrary<Record<string, unknown>> {
  const entries: [string, fc.Arbitrary<unknown>][] = [
    ['person.name.firstName', maybe(str)],
    ['person.name.lastName', maybe(str)],
    ['person.birthDate', maybe(iso(now))],
    ['homeAddress.countryCode', maybe(fc.constantFrom('SE', 'NO', 'se', 'US', ''))],
    ['homeAddress.city', maybe(str)],
    ['loyalty.tier', maybe(fc.constantFrom('gold', 'Gold', 'silver', ''))],
    ['loyalty.points', maybe(num)],
    ['loyalty.joinDate', maybe(iso(now))],
    [
      'preferences.categories',
      maybe(fc.array(fc.oneof(fc.constantFrom(...CATEGORIES), fc.constant(null)), { maxLength: 4 })),
    ],
    ['consents.marketing.email', maybe(fc.boolean())],
    ['createdAt', maybe(iso(now))],
    ['_tenant.score', maybe(num)],
    ['_tenant.nickname', maybe(str)],
    ['_tenant.page-name', maybe(str)],
    ['_tenant.lastVisit', maybe(iso(now))],
    ['_tenant.vip', maybe(fc.boolean())],
    [
      '_tenant.tags',
      maybe(fc.array(fc.oneof(fc.constantFrom(...CATEGORIES), fc.constantFrom(...STRINGS)), { maxLength: 4 })),
    ],
    ['_tenant.scores', maybe(fc.array(fc.oneof(num, fc.constant(null)), { maxLength: 4 }))],
    [
      '_tenant.prefs',
      maybe(
        fc.dictionary(fc.constantFrom('a', 'b', 'k', 'key with space', 'é'), fc.oneof(str, fc.constant(null)), {
          maxKeys: 3,
        }),
      ),
    ],
  ];
  const parents = fc.record({
    person: fc.boolean(),
    homeAddress: fc.boolean(),
  });
  return fc.tuple(fc.tuple(...entries.map(([, arb]) => arb)), parents).map(([values, nullParents]) => {
    const attrs: Record<string, unknown> = {};
    // Occasionally a whole object is null: every path below reads as missing.
    if (nullParents.person && values[0] === undefined && values[1] === undefined && values[2] === undefined)
      attrs.person = null;
    if (nullParents.homeAddress && values[3] === undefined && values[4] === undefined) attrs.homeAddress = null;
    entries.forEach(([path], i) => {
      setPath(attrs, path, values[i]);
    });
    return attrs;
  });
}

function eventPayload(): fc.Arbitrary<Record<string, unknown>> {
  const item = fc.record(
    {
      SKU: maybe(fc.constantFrom('SH-41', 'HT-1', 'x')),
      name: maybe(str),
      category: maybe(fc.constantFrom(...CATEGORIES)),
      quantity: maybe(fc.constantFrom(0, 1, 2, 3, 0.5)),
      priceTotal: maybe(num),
    },
    { requiredKeys: [] },
  );
  const entries: [string, fc.Arbitrary<unknown>][] = [
    ['channel', maybe(fc.constantFrom('web', 'mobile', 'Web', 'é'))],
    ['web.webPageDetails.name', maybe(str)],
    ['commerce.order.priceTotal', maybe(num, 8)],
    ['commerce.order.currencyCode', maybe(fc.constantFrom('SEK', 'EUR', 'sek'))],
    [
      'productListItems',
      maybe(
        fc.array(fc.oneof({ arbitrary: item, weight: 5 }, { arbitrary: fc.constant(null), weight: 1 }), {
          maxLength: 3,
        }),
      ),
    ],
    ['marketing.campaignId', maybe(fc.constantFrom('c1', 'c2'))],
    ['_tenant.rating', maybe(num)],
  ];
  return fc.tuple(...entries.map(([, arb]) => arb)).map((values) => {
    const payload: Record<string, unknown> = {};
    entries.forEach(([path], i) => {
      const v = values[i];
      // Items come from fc.record with optional keys: drop the `undefined` ones.
      setPath(payload, path, Array.isArray(v) ? v.map((x) => (x === null ? null : JSON.parse(JSON.stringify(x)))) : v);
    });
    return payload;
  });
}

interface RawEvent {
  order: number;
  timestamp: number;
  eventType: string;
  payload: Record<string, unknown>;
}

function rawEvents(now: number): fc.Arbitrary<RawEvent[]> {
  return fc.array(
    fc.record({
      order: fc.integer(),
      timestamp: instant(now),
      eventType: fc.constantFrom(...EVENT_TYPES),
      payload: eventPayload(),
    }),
    { maxLength: 8 },
  );
}

const STATUS = fc.constantFrom<MembershipStatus | undefined>(undefined, undefined, 'REALIZED', 'EXISTING', 'EXITED');

/** A row of the external audience "Churn risk" as an ingestion run stores it: typed values, nulls, absent keys. */
function listRow(now: number): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      tier: fc.constantFrom<string | null>('gold', 'silver', 'Gold', '', null),
      score: fc.oneof(num, fc.constant(null)),
      optedIn: fc.constantFrom<boolean | null>(true, false, null),
      since: fc.oneof(iso(now), fc.constant(null)),
    },
    { requiredKeys: [] },
  );
}

function profile(now: number): fc.Arbitrary<{
  attributes: Record<string, unknown>;
  events: RawEvent[];
  statuses: (MembershipStatus | undefined)[];
  row: Record<string, unknown>;
}> {
  return fc.record({
    attributes: attributes(now),
    events: rawEvents(now),
    statuses: fc.tuple(STATUS, STATUS, STATUS),
    row: listRow(now),
  });
}

/**
 * Profiles at `now`. Event ids come from a random order independent of insertion and time,
 * so ties on timestamp are broken by id as the store does.
 */
export function profiles(now: number, maxLength: number): fc.Arbitrary<TestProfile[]> {
  // size 'max': lengths up to maxLength (not fast-check's small default), yet shrinkable down to one profile.
  return fc.array(profile(now), { minLength: 1, maxLength, size: 'max' }).map((list) => {
    const all = list.flatMap((p, pi) => p.events.map((e, ei) => ({ pi, ei, order: e.order })));
    all.sort((a, b) => a.order - b.order || a.pi - b.pi || a.ei - b.ei);
    const ids = new Map<string, number>();
    all.forEach((e, i) => {
      ids.set(`${e.pi}:${e.ei}`, i + 1);
    });
    return list.map((p, pi) => ({
      attributes: p.attributes,
      events: p.events.map(
        (e, ei): TestEvent => ({
          id: ids.get(`${pi}:${ei}`)!,
          timestamp: e.timestamp,
          eventType: e.eventType,
          payload: e.payload,
        }),
      ),
      memberships: p.statuses.flatMap((status, i) =>
        status === undefined ? [] : [{ audienceId: i + 1, status, ...(i === 1 ? { payload: p.row } : {}) }],
      ),
    }));
  });
}

/**
 * One generated store and the expressions checked on it: an instant from NOWS, `expressions`
 * definitions and up to `profilesPerStore` profiles at that instant. Several expressions share a
 * store because loading it costs more than checking one expression (both differential tests).
 */
export function storeCases(
  gen: PqlGenerator,
  expressions: number,
  profilesPerStore: number,
): fc.Arbitrary<[number, string[], TestProfile[]]> {
  return fc
    .constantFrom(...NOWS)
    .chain((now) =>
      fc.tuple(
        fc.constant(now),
        fc.array(gen.definition(3), { minLength: expressions, maxLength: expressions }),
        profiles(now, profilesPerStore),
      ),
    );
}
