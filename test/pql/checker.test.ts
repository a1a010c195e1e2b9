import { describe, expect, it } from 'vitest';
import { buildCatalog, DEFAULT_SCHEMA_FIELDS, typeToString } from '../../src/pql/check/catalog.js';
import { check, checkDefinition, checkSource } from '../../src/pql/check/checker.js';
import type { CheckedExpression, CheckOptions, ResolvedAudience } from '../../src/pql/check/types.js';
import type { ExpressionNode } from '../../src/pql/language/ast.js';
import { PqlError } from '../../src/pql/language/errors.js';
import { parse } from '../../src/pql/language/parser.js';
import { print } from '../../src/pql/language/printer.js';
import { walk } from '../../src/pql/language/visitor.js';

const catalog = buildCatalog([
  ...DEFAULT_SCHEMA_FIELDS,
  { class: 'profile', path: '_tenant.attrs', type: 'map<number>' },
  { class: 'profile', path: '_tenant.tags', type: 'array<string>' },
  { class: 'profile', path: '_tenant.scores', type: 'array<number>' },
  { class: 'profile', path: '_tenant.visits', type: 'array<object>' },
  { class: 'profile', path: '_tenant.visits.page', type: 'string' },
  { class: 'profile', path: '_tenant.visits.at', type: 'datetime' },
  { class: 'profile', path: '_tenant.visits.pages', type: 'array<object>' },
  { class: 'profile', path: '_tenant.visits.pages.url', type: 'string' },
]);

/** Audiences 1 "vip" → 2 "gold" → 3 "base"; 4 "loop" depends on 1. */
const audiences: ResolvedAudience[] = [
  { id: 1, name: 'vip' },
  { id: 2, name: 'gold' },
  { id: 3, name: 'base' },
  { id: 4, name: 'loop' },
  {
    id: 5,
    name: 'crm',
    payload: {
      kind: 'object',
      fields: {
        tier: { kind: 'string' },
        score: { kind: 'number' },
        vip: { kind: 'boolean' },
        since: { kind: 'datetime' },
      },
    },
  },
];
const dependencies: Record<number, number[]> = { 1: [2], 2: [3], 3: [], 4: [1] };

const options: CheckOptions = {
  catalog,
  resolveAudience: (ref) => audiences.find((a) => a.name === ref || String(a.id) === ref),
  audienceDependencies: (id) => dependencies[id] ?? [],
};

function ok(source: string, extra: Partial<CheckOptions> = {}): CheckedExpression {
  return checkSource(source, { ...options, ...extra });
}

function typeError(source: string, extra: Partial<CheckOptions> = {}): PqlError {
  try {
    ok(source, extra);
  } catch (e) {
    expect(e).toBeInstanceOf(PqlError);
    expect((e as PqlError).code).toBe('PQL_TYPE_ERROR');
    return e as PqlError;
  }
  throw new Error(`expected a type error for: ${source}`);
}

/** Asserts a PQL_TYPE_ERROR containing `fragment` at line:column. */
function fails(source: string, fragment: string, line: number, column: number, extra: Partial<CheckOptions> = {}) {
  const e = typeError(source, extra);
  expect(e.message).toContain(fragment);
  expect({ line: e.loc.line, column: e.loc.column }).toEqual({ line, column });
}

/** The type of the first node (pre-order) of `kind` for which `pick` holds. */
function typeOf(checked: CheckedExpression, pick: (n: ExpressionNode) => boolean): string {
  const stack: unknown[] = [checked.ast];
  while (stack.length > 0) {
    const v = stack.shift();
    if (v && typeof v === 'object') {
      if ('kind' in v && checked.types.has(v as ExpressionNode) && pick(v as ExpressionNode)) {
        return typeToString(checked.types.get(v as ExpressionNode)!);
      }
      stack.push(...Object.values(v));
    }
  }
  throw new Error('no such node');
}

describe('paths', () => {
  it('resolves profile paths at the top and types them from the catalogue', () => {
    const c = ok('person.name.firstName = "Jo"');
    expect(typeOf(c, (n) => n.kind === 'Member' && n.name === 'firstName')).toBe('string');
    expect(typeOf(c, (n) => n.kind === 'Member' && n.name === 'name')).toBe('object');
    expect(c.type).toEqual({ kind: 'boolean' });
  });

  it('reports an unknown profile field at its name, naming the path and updateProfileSchema', () => {
    fails(
      'person.name.middleName = "x"',
      'unknown field person.name.middleName: the profile schema has no such field (add it with updateProfileSchema)',
      1,
      13,
    );
    fails('loyaltyPoints > 3', 'unknown field loyaltyPoints', 1, 1);
  });

  it('resolves bare names inside an xEvent filter against the event schema', () => {
    ok('xEvent[eventType = "x" and commerce.order.priceTotal > 3 and timestamp occurs today].count() > 0');
    fails(
      'xEvent[commerce.order.total > 3].count() > 0',
      'unknown field xEvent.commerce.order.total: the event schema has no such field (add it with updateProfileSchema)',
      1,
      23,
    );
  });

  it('does not resolve event fields at the top, nor profile fields inside an xEvent filter', () => {
    fails('eventType = "x"', 'unknown field eventType: the profile schema', 1, 1);
    fails('xEvent[loyalty.tier = "gold"].count() > 0', 'unknown field xEvent.loyalty', 1, 8);
  });

  it('resolves fields of array-of-object items inside a filter on that array, nested in events', () => {
    const c = ok('xEvent[productListItems[category = "shoes" and quantity > 1].count() > 0].count() > 0');
    // The array is read as well as the fields of its items.
    expect(c.referencedFields).toEqual([
      'xEvent.productListItems',
      'xEvent.productListItems.category',
      'xEvent.productListItems.quantity',
    ]);
    fails(
      'xEvent[productListItems[colour = "red"].count() > 0].count() > 0',
      'unknown field xEvent.productListItems.colour',
      1,
      25,
    );
  });

  it('reaches enclosing scopes with ^, one level per ^', () => {
    const c = ok(
      'xEvent[^.loyalty.tier = "gold" and productListItems[^^.loyalty.points > quantity].count() > 0].count() > 0',
    );
    expect(c.referencedFields).toEqual([
      'loyalty.points',
      'loyalty.tier',
      'xEvent.productListItems',
      'xEvent.productListItems.quantity',
    ]);
    ok('xEvent[productListItems[^.eventType = "x"].count() > 0].count() > 0');
    fails('^.loyalty.tier = "x"', '^.loyalty reaches past the profile', 1, 1);
    fails('xEvent[^^.loyalty.tier = "x"].count() > 0', '^^.loyalty reaches past the profile', 1, 8);
    fails('xEvent[^.eventType = "x"].count() > 0', 'unknown field eventType: the profile schema', 1, 8);
  });

  it('treats $1 as the profile', () => {
    const c = ok('$1.loyalty.points > 3');
    expect(c.referencedFields).toEqual(['loyalty.points']);
    ok('xEvent[$1.loyalty.tier = "gold"].count() > 0');
    fails('$2.loyalty.points > 3', 'unknown parameter $2', 1, 1);
  });

  it('lists referenced fields sorted and distinct: full profile paths and xEvent.-prefixed event paths', () => {
    const c = ok(
      'loyalty.tier = "gold" and person.name.firstName.startsWith("J") and loyalty.tier != "x" and ' +
        'xEvent[eventType = "order" and timestamp occurs today].sum(commerce.order.priceTotal) > 10',
    );
    expect(c.referencedFields).toEqual([
      'loyalty.tier',
      'person.name.firstName',
      'xEvent.commerce.order.priceTotal',
      'xEvent.eventType',
      'xEvent.timestamp',
    ]);
  });

  it('rejects an object reached through an array and used as such, pointing to filters and aggregates', () => {
    fails('xEvent.web.count() > 0', 'is an array: reach .web of its items with a filter [...]', 1, 8);
    fails('xEvent.eventType.startsWith("x")', 'startsWith() applies to a string, but array<string> is not one', 1, 18);
    fails(
      'xEvent.eventType = homeAddress.city',
      'a path through an array can only be compared with a constant here',
      1,
      20,
    );
    // An array on the right is array equality, so the right side is read as a profile value first.
    fails('xEvent.eventType = eventType', 'unknown field eventType', 1, 20);
  });

  it('types a scalar path through an array as the array of its values (issue 18)', () => {
    expect(checkSource('xEvent.eventType.distinct().count() > 1', { catalog }).types).toBeDefined();
    const checked = check(parse('_tenant.visits.page'), '_tenant.visits.page', { catalog });
    expect(typeToString(checked.type)).toBe('array<string>');
  });

  it('reads a path through an array compared with a constant as some item (issue 18)', () => {
    const checked = checkSource('xEvent.commerce.order.priceTotal > 10', { catalog });
    expect(print(checked.ast)).toBe('xEvent.exists(commerce.order.priceTotal > 10)');
  });

  it('rejects a field of a map, pointing to get', () => {
    fails('_tenant.attrs.size > 1', '_tenant.attrs (map<number>) is a map: read its entries with .get("size")', 1, 15);
  });

  it('rejects a field of a scalar', () => {
    fails('loyalty.points.value > 1', 'loyalty.points (number) has no fields (looking for .value)', 1, 16);
  });

  it('reports errors on later lines with their own line and column', () => {
    fails('loyalty.tier = "gold"\n  and xEvent[\n    colour = "red"].count() > 0', 'unknown field xEvent.colour', 3, 5);
  });
});

describe('operators', () => {
  it('rejects comparing values of different known types, at the right operand', () => {
    fails('loyalty.points = "x"', 'cannot compare number with string: loyalty.points (number) = string', 1, 18);
    fails('person.birthDate < "2000-01-01"', 'cannot compare datetime with string', 1, 20);
    fails('loyalty.tier > 3', 'cannot compare string with number', 1, 16);
  });

  it('compares numbers, strings and datetimes (dates are datetimes) with every operator', () => {
    for (const op of ['=', '!=', '<', '<=', '>', '>=']) {
      ok(`loyalty.points ${op} 3.5`);
      ok(`loyalty.tier ${op} "gold"`);
      ok(`person.birthDate ${op} date(2000, 1, 1)`);
      ok(`createdAt ${op} datetime("2024-03-14T10:00:00Z")`);
      ok(`createdAt ${op} now`);
    }
  });

  it('compares booleans only with = and !=', () => {
    ok('consents.marketing.email = true');
    ok('consents.marketing.email != false');
    fails('consents.marketing.email < true', 'booleans can only be compared with = and !=, not <', 1, 28);
  });

  it('compares the null literal with anything', () => {
    ok('loyalty.points = null');
    ok('null != person.birthDate');
  });

  it('rejects comparing arrays, objects and maps', () => {
    fails('preferences.categories < ["a"]', 'array<string> values cannot be compared with <', 1, 1);
    fails('person.name = person.name', 'object values cannot be compared', 1, 1);
    fails('1 = _tenant.attrs', 'map<number> values cannot be compared', 1, 5);
  });

  it('checks in / notIn list elements against the value', () => {
    ok('homeAddress.countryCode in ["SE", "NO"]');
    ok('loyalty.points notIn [1, 2, null]');
    ok('"shoes" in preferences.categories');
    fails(
      'homeAddress.countryCode in ["SE", 3]',
      'in list element does not match homeAddress.countryCode (string)',
      1,
      35,
    );
    fails('loyalty.points notIn ["a"]', 'notIn list element does not match', 1, 23);
    fails('loyalty.points in preferences.categories', 'in list does not match', 1, 19);
    fails('loyalty.points in 3', 'the right operand of in must be an array, found number', 1, 19);
    fails('preferences.categories in ["a"]', 'the left operand of in must be a single value', 1, 1);
  });

  it('requires a string on the left of like', () => {
    ok('person.name.firstName like "Jo%"');
    fails('loyalty.points like "1%"', 'the left operand of like must be string, found loyalty.points (number)', 1, 1);
  });

  it('types arithmetic: numbers, + on two strings, nothing else', () => {
    const c = ok('loyalty.points * 2 + 1 > 3 and person.name.firstName + " " + person.name.lastName = "A B"');
    expect(typeOf(c, (n) => n.kind === 'Arithmetic' && n.op === '*')).toBe('number');
    expect(typeOf(c, (n) => n.kind === 'Arithmetic' && n.right.kind === 'Member')).toBe('string');
    fails(
      'loyalty.points + "x" = 1',
      '+ needs two numbers or two strings, found loyalty.points (number) + string',
      1,
      18,
    );
    fails('loyalty.tier - "x" = 1', '- needs numbers', 1, 1);
    fails('createdAt + 1 > 0', '+ needs two numbers or two strings, found createdAt (datetime) + number', 1, 1);
  });

  it('requires a number for unary minus', () => {
    ok('-loyalty.points < 0');
    fails('-loyalty.tier = 1', 'the operand of unary - must be number, found loyalty.tier (string)', 1, 2);
  });

  it('requires booleans for and, or, not', () => {
    ok('not consents.marketing.email or (loyalty.points > 1 and !false)');
    fails('loyalty.points and true', 'the left operand of and must be boolean, found loyalty.points (number)', 1, 1);
    fails('true or "x"', 'the right operand of or must be boolean, found string', 1, 9);
    fails('not loyalty.tier', 'the operand of not must be boolean', 1, 5);
  });

  it('requires a boolean filter condition on an array of objects', () => {
    fails('xEvent[channel].count() > 0', 'a filter condition must be boolean, found xEvent.channel (string)', 1, 8);
    fails(
      'preferences.categories["x" = "x"].count() > 0',
      'a filter [...] needs an array of objects, but preferences.categories (array<string>) is not one',
      1,
      1,
    );
    fails('loyalty[tier = "gold"].count() > 0', 'loyalty (object) is not one', 1, 1);
  });

  it('types array literals by their elements and rejects mixed ones', () => {
    const c = ok('[1, 2, 3].includes(loyalty.points) and [].count() = 0');
    expect(typeOf(c, (n) => n.kind === 'ArrayLiteral' && n.elements.length === 3)).toBe('array<number>');
    expect(typeOf(c, (n) => n.kind === 'ArrayLiteral' && n.elements.length === 0)).toBe('array<any>');
    fails('[1, "a"].count() > 0', 'array elements must share one type: string after number', 1, 5);
  });
});

describe('functions and methods', () => {
  it('rejects an unknown method at its name, and suggests the function form', () => {
    fails('person.name.firstName.beginsWith("J")', 'unknown method beginsWith()', 1, 23);
    fails('loyalty.tier.inSegment()', 'inSegment is a function, write inSegment(...)', 1, 14);
  });

  it('rejects an unknown function at its name, and suggests the method form', () => {
    fails('lower(loyalty.tier) = "x"', 'unknown function lower(): lower is a method, write value.lower(...)', 1, 1);
    fails('foo(1)', 'unknown function foo()', 1, 1);
  });

  it('rejects a method on the wrong kind of receiver', () => {
    fails(
      'loyalty.points.startsWith("1")',
      'startsWith() applies to a string, but loyalty.points (number) is not one',
      1,
      16,
    );
    fails('loyalty.tier.count() > 1', 'count() applies to an array', 1, 14);
    fails('loyalty.tier.getYear() = 1', 'getYear() applies to a datetime', 1, 14);
    fails('preferences.categories.get("a") = 1', 'get() applies to a map', 1, 24);
  });

  it('checks the argument count against the signature, optional arguments included', () => {
    fails('person.name.firstName.startsWith()', 'startsWith() takes 1 or 2 arguments, got 0', 1, 23);
    fails('person.name.firstName.startsWith("a", true, 1)', 'startsWith() takes 1 or 2 arguments, got 3', 1, 23);
    fails('preferences.categories.count(1) > 0', 'count() takes 0 arguments, got 1', 1, 24);
    fails('date(2024, 1) < now', 'date() takes 1 or 3 arguments, got 2', 1, 1);
    fails('age() > 1', 'age() takes 1 argument, got 0', 1, 1);
  });

  it('checks argument types, the optional caseSensitive included', () => {
    fails(
      'person.name.firstName.startsWith(1)',
      'argument 1 (text) of startsWith() must be string, found number',
      1,
      34,
    );
    fails('person.name.firstName.equals("a", "no")', 'argument 2 (caseSensitive) of equals() must be boolean', 1, 35);
    fails('preferences.categories.includes(1)', 'argument 1 (value) of includes() must be string, found number', 1, 33);
    fails('_tenant.scores.intersects(["a"])', 'argument 1 (other) of intersects() must be array<number>', 1, 27);
    fails(
      'age(loyalty.points) > 1',
      'argument 1 (date) of age() must be datetime, found loyalty.points (number)',
      1,
      5,
    );
    fails('_tenant.attrs.get(1) > 1', 'argument 1 (key) of get() must be string', 1, 19);
  });

  it('reports a regex that RE2 does not compile at the literal, with RE2s message', () => {
    fails(
      'person.name.firstName.matches("(a")',
      'invalid regular expression "(a": error parsing regexp: missing closing ): `(a`',
      1,
      31,
    );
    fails('person.name.firstName.regexGroup("a(", 1) = "x"', 'invalid regular expression "a("', 1, 34);
    fails('person.name.firstName.matches("(a)\\\\1")', 'invalid escape sequence', 1, 31);
  });

  it('refuses a CHAIN of more than 16 steps, naming the limit, and accepts 16', () => {
    const chain = (n: number) =>
      `CHAIN(xEvent, timestamp, [${Array.from({ length: n }, (_, i) => `S${i}: WHAT(eventType = "t${i}")`).join(', ')}])`;
    ok(chain(16));
    const e = typeError(chain(24));
    expect(e.code).toBe('PQL_TYPE_ERROR');
    expect(e.message).toContain('CHAIN has 24 steps; at most 16 are allowed');
    expect(e.message).toContain('1000');
  });

  it('refuses a regex whose counted repetition or compiled program is over the limit, naming it', () => {
    const e = typeError('homeAddress.city.matches(".{1000}")');
    expect(e.code).toBe('PQL_TYPE_ERROR');
    expect(e.message).toBe(
      'regular expression ".{1000}" repeats up to 1000 times; a counted repetition may be at most {100}',
    );
    fails('homeAddress.city.matches("a{2,101}")', 'repeats up to 101 times', 1, 26);
    fails('homeAddress.city.matches("(a{100}){5}")', 'over the limit of 500', 1, 26);
    fails(
      'homeAddress.city.matches(".{100}.{100}.{100}.{100}.{100}")',
      'is too complex: it compiles to 502 instructions, over the limit of 500',
      1,
      26,
    );
    // Braces in a class, escaped or quoted are characters, not repetitions.
    ok('homeAddress.city.matches("[{1000}]\\\\{1000}\\\\Q{1000}\\\\E")');
    ok('homeAddress.city.matches("^[a-z]{2,100}[0-9]{1,5}$")');
  });

  it('requires the regex to be a string literal and the group a whole number within the groups', () => {
    fails('person.name.firstName.matches(loyalty.tier)', 'regex of matches() must be a string literal', 1, 31);
    fails(
      'person.name.firstName.regexGroup("(a)(b)", 3) = "x"',
      'regexGroup() asks for group 3, but the regular expression has 2 group(s)',
      1,
      44,
    );
    fails(
      'person.name.firstName.regexGroup("(a)", 1.5) = "x"',
      'group of regexGroup() must be a whole number literal',
      1,
      41,
    );
    ok('person.name.firstName.regexGroup("(?i)(a)(b)", 2) = "b"');
  });

  it('requires per-item arguments on arrays of objects and a path for aggregates over objects', () => {
    fails(
      '_tenant.visits.sum() > 1',
      'sum() over _tenant.visits (array<object>) needs the path of a number field of each item',
      1,
      16,
    );
    fails('_tenant.scores.sum(x) > 1', 'the argument of sum(), read from each item, needs an array of objects', 1, 1);
    fails(
      '_tenant.tags.sum() > 1',
      'sum() without an argument needs an array of number, but _tenant.tags (array<string>) is not one',
      1,
      14,
    );
    fails(
      '_tenant.visits.sum(page) > 1',
      'argument 1 (path) of sum() must be number, found _tenant.visits.page (string)',
      1,
      20,
    );
    fails('_tenant.visits.max(at) > 1', 'argument 1 (path) of max() must be number', 1, 20);
    fails('_tenant.tags.exists(true)', 'needs an array of objects', 1, 1);
    fails('_tenant.visits.exists(page)', 'argument 1 (condition) of exists() must be boolean', 1, 23);
    fails('_tenant.visits.topN(_tenant.visits, 1).count() > 0', 'unknown field _tenant.visits._tenant', 1, 21);
    fails('_tenant.visits.topN(at, -1).count() > 0', 'n of topN() must be a whole number literal (0 or more)', 1, 25);
  });

  it('types if by its branches, which must agree', () => {
    const c = ok('if(loyalty.tier = "gold", 2, loyalty.points) = 2');
    expect(typeOf(c, (n) => n.kind === 'Call' && n.name === 'if')).toBe('number');
    expect(typeOf(ok('if(true, null, "a") = "a"'), (n) => n.kind === 'Call')).toBe('string');
    fails(
      'if(loyalty.tier = "gold", 2, "x") = 2',
      'the branches of if() must have one type, found number and string',
      1,
      30,
    );
    fails('if(loyalty.tier, 1, 2) = 1', 'argument 1 (condition) of if() must be boolean', 1, 4);
  });

  it('requires date literals that name real days and datetimes in ISO-8601', () => {
    ok('person.birthDate = date(2024, 2, 29) or person.birthDate = date("2024-02-29")');
    ok('createdAt > datetime("2024-03-14T10:00:00.250+01:00")');
    fails('person.birthDate = date(2023, 2, 29)', 'invalid date: day 29 does not exist in 2023-02', 1, 34);
    fails('person.birthDate = date(2023, 13, 1)', 'invalid date: month 13 is not 1–12', 1, 31);
    fails('person.birthDate = date(2023.5, 1, 1)', 'invalid date: year 2023.5 is not 0–9999', 1, 25);
    fails(
      'person.birthDate = date("2023-02-29")',
      'invalid date "2023-02-29": expected an existing day as YYYY-MM-DD',
      1,
      25,
    );
    fails('person.birthDate = date("2023-2-1")', 'invalid date "2023-2-1"', 1, 25);
    fails('createdAt = datetime("2024-03-14T25:00:00Z")', 'invalid datetime "2024-03-14T25:00:00Z"', 1, 22);
    fails('createdAt = datetime("yesterday")', 'invalid datetime "yesterday"', 1, 22);
  });

  it('requires literal arguments for date and datetime (they are literals, docs/pql.md §2)', () => {
    fails('person.birthDate = date(currentYear(), 1, 1)', 'date(year, month, day) takes number literals', 1, 25);
    fails('person.birthDate = date(loyalty.tier)', 'date() takes a string literal', 1, 25);
    fails('createdAt = datetime(loyalty.tier)', 'datetime() takes a string literal', 1, 22);
  });

  it('types the map methods', () => {
    const c = ok(
      '_tenant.attrs.get("a") > 1 and _tenant.attrs.keys().includes("b") and _tenant.attrs.values().sum() > 0',
    );
    expect(typeOf(c, (n) => n.kind === 'MethodCall' && n.name === 'get')).toBe('number');
    expect(typeOf(c, (n) => n.kind === 'MethodCall' && n.name === 'keys')).toBe('array<string>');
    expect(typeOf(c, (n) => n.kind === 'MethodCall' && n.name === 'values')).toBe('array<number>');
  });

  it('keeps the item type through head, topN and filters, so fields of the result resolve', () => {
    const c = ok(
      'xEvent[eventType = "x"].head().commerce.order.priceTotal > 1 and xEvent.topN(timestamp, 2).count() = 2',
    );
    expect(typeOf(c, (n) => n.kind === 'MethodCall' && n.name === 'head')).toBe('object');
    expect(typeOf(c, (n) => n.kind === 'MethodCall' && n.name === 'topN')).toBe('array<object>');
    expect(typeOf(c, (n) => n.kind === 'Filter')).toBe('array<object>');
    expect(c.referencedFields).toContain('xEvent.commerce.order.priceTotal');
  });
});

describe('occurs', () => {
  it('requires a datetime subject', () => {
    fails('loyalty.points occurs today', 'occurs needs a datetime on its left, found loyalty.points (number)', 1, 1);
  });

  it('requires datetime references: time words, date literals, datetime paths', () => {
    ok('person.birthDate occurs on date(2000, 1, 1) and createdAt occurs between loyalty.joinDate and now');
    ok(
      'createdAt occurs <= 3 days after person.birthDate and createdAt occurs before datetime("2024-01-01T00:00:00Z")',
    );
    fails(
      'createdAt occurs before loyalty.tier',
      'an occurs reference must be a datetime, found loyalty.tier (string)',
      1,
      25,
    );
    fails('createdAt occurs between now and 3', 'an occurs reference must be a datetime, found number', 1, 34);
  });

  it('requires non-negative amounts, whole for months and years', () => {
    ok('createdAt occurs <= 1.5 days before now and createdAt occurs = 0 days before today');
    fails(
      'createdAt occurs <= 1.5 months before now',
      'months are calendar units: the amount must be a whole number, found 1.5',
      1,
      18,
    );
    const ast = parse('createdAt occurs <= 3 days before now');
    if (ast.kind === 'Occurs' && ast.tail.form === 'relative') ast.tail.amount = -3;
    expect(() => check(ast, 'createdAt occurs <= 3 days before now', options)).toThrow(
      'the amount of an occurs window must be a number of 0 or more, found -3',
    );
  });
});

describe('audiences', () => {
  it('resolves inSegment by name or id and records the audiences in order of first use', () => {
    const c = ok('inSegment("gold") or inSegment("3") or inSegment("gold")');
    expect([...c.audiences]).toEqual([
      ['gold', 2],
      ['3', 3],
    ]);
    expect(c.referencedAudiences).toEqual([2, 3]);
  });

  it('reports an unknown audience at the literal', () => {
    fails('loyalty.points > 1 or inSegment("nope")', 'unknown audience "nope"', 1, 33);
    fails('inSegment("gold")', 'unknown audience "gold"', 1, 11, { resolveAudience: undefined });
  });

  it('requires exactly one string literal', () => {
    fails('inSegment(loyalty.tier)', 'audience of inSegment() must be a string literal', 1, 11);
    fails('inSegment(1)', 'argument 1 (audience) of inSegment() must be string, found number', 1, 11);
    fails('inSegment("a", "b")', 'inSegment() takes 1 argument, got 2', 1, 1);
  });

  it("types a field of an external audience's row by the audience's declared fields", () => {
    const c = ok('inSegment("crm").payload.tier = "gold" and inSegment("5").payload.score > 3');
    expect(c.referencedAudiences).toEqual([5]);
    expect(c.referencedFields).toEqual([]);
    expect(c.eligibility.streaming).toBe(true);
    ok('inSegment("crm").payload.since occurs <= 7 days before now and inSegment("crm").payload.vip');
    fails('inSegment("crm").payload.score = "high"', 'cannot compare', 1, 34);
  });

  it('names an unknown payload field and the fields there are', () => {
    fails(
      'inSegment("crm").payload.level = "gold"',
      'unknown payload field level of audience "crm": its rows have tier, score, vip, since',
      1,
      26,
    );
  });

  it('rejects a payload of an audience without a list, and the payload as a whole', () => {
    fails('inSegment("vip").payload.tier = "x"', 'audience "vip" has no payload', 1, 1);
    fails('inSegment("crm").payload.isNull()', 'read one of its fields, e.g. inSegment("crm").payload.tier', 1, 1);
    fails('inSegment("crm").tier = "x"', 'inSegment("crm").payload.<field>', 1, 18);
    fails('inSegment("nope").payload.tier = "x"', 'unknown audience "nope"', 1, 11);
  });

  it('rejects an audience that refers to itself', () => {
    fails('inSegment("vip")', 'inSegment("vip") makes a cycle of audiences: vip → vip', 1, 11, { selfAudienceId: 1 });
  });

  it('rejects a cycle through dependencies (A → B → A) and names it', () => {
    // Defining "gold" (2): vip (1) depends on gold, so gold → vip → gold.
    fails('inSegment("vip")', 'inSegment("vip") makes a cycle of audiences: gold → vip → gold', 1, 11, {
      selfAudienceId: 2,
    });
    // Defining "base" (3): loop → vip → gold → base.
    fails('inSegment("loop")', 'base → loop → vip → gold → base', 1, 11, { selfAudienceId: 3 });
  });

  it('allows references that do not lead back, and a new audience with no id yet', () => {
    expect(ok('inSegment("base")', { selfAudienceId: 1 }).referencedAudiences).toEqual([3]);
    expect(ok('inSegment("loop")').referencedAudiences).toEqual([4]);
  });

  it('names a self audience the resolver does not know as "this audience"', () => {
    const resolveAudience = (ref: string) => (ref === 'x' ? { id: 8, name: 'x' } : undefined);
    fails('inSegment("x")', 'this audience → x → this audience', 1, 11, {
      resolveAudience,
      audienceDependencies: (id) => (id === 8 ? [9] : []),
      selfAudienceId: 9,
    });
  });
});

describe('scopes and bindings', () => {
  it('binds let variables with the type of their value, ahead of fields', () => {
    const c = ok('let S = (xEvent.sum(commerce.order.priceTotal)) in (S > 100 and S < 1000)');
    expect(typeOf(c, (n) => n.kind === 'Identifier' && n.name === 'S')).toBe('number');
    expect(c.referencedFields).toEqual(['xEvent.commerce.order.priceTotal']);
    ok('let loyalty = (1) in (loyalty = 1)');
    fails('let S = ("a") in (S > 1)', 'cannot compare string with number', 1, 23);
  });

  it('binds quantifier variables to the items; bare fields still read the enclosing item', () => {
    const c = ok('exists E from xEvent where E.eventType = "x" and loyalty.points > 1');
    expect(c.referencedFields).toEqual(['loyalty.points', 'xEvent.eventType']);
    ok('forall E from xEvent, P from E.productListItems : P.quantity > 0');
    ok('exists T from preferences.categories where T = "shoes"');
    fails('exists E from xEvent where eventType = "x"', 'unknown field eventType: the profile schema', 1, 28);
    fails('exists E from loyalty where true', 'E must range over an array, but loyalty (object) is not one', 1, 15);
    fails('exists E from xEvent, E from xEvent where true', 'variable E is bound twice in one exists', 1, 23);
    fails('exists E from xEvent where E.points > 1', 'unknown field xEvent.points', 1, 30);
    fails('exists E from xEvent where E.commerce', 'the condition of exists must be boolean', 1, 28);
  });

  it('types select as the source array and aggregates as numbers', () => {
    const c = ok('(select E from xEvent where E.eventType = "x").count() > 0');
    expect(typeOf(c, (n) => n.kind === 'Select')).toBe('array<object>');
    // The body after where reaches as far right as it can, so the comparison needs parentheses.
    const a = ok('(sum E.commerce.order.priceTotal over E from xEvent where E.eventType = "x") > 10');
    expect(typeOf(a, (n) => n.kind === 'Aggregate')).toBe('number');
    ok('(count E over E from xEvent where true) > 1');
    fails(
      '(sum E.eventType over E from xEvent where true) > 1',
      'the value of sum must be number, found xEvent.eventType (string)',
      1,
      6,
    );
  });

  it('checks CHAIN: array of objects, datetime time field, WHAT conditions on each item', () => {
    const c = ok(
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "view") WHEN(<= 1 hours before now), B: WHAT(eventType = "buy") WHEN(<= 10 minutes after A)])',
    );
    expect(c.referencedFields).toEqual(['xEvent.eventType', 'xEvent.timestamp']);
    fails('CHAIN(xEvent, time, [A: WHAT(true)])', 'unknown field xEvent.time: the event schema', 1, 15);
    fails(
      'CHAIN(xEvent, eventType, [A: WHAT(true)])',
      'the CHAIN time field eventType must be a datetime, found string',
      1,
      15,
    );
    fails('CHAIN(preferences.categories, timestamp, [A: WHAT(true)])', 'CHAIN needs an array of objects', 1, 7);
    fails(
      'CHAIN(xEvent, timestamp, [A: WHAT(channel)])',
      'WHAT of step A must be boolean, found xEvent.channel (string)',
      1,
      35,
    );
    fails('CHAIN(xEvent, timestamp, [A: WHAT(loyalty.tier = "x")])', 'unknown field xEvent.loyalty', 1, 35);
  });

  it('lets WHEN name earlier chain steps only, and labels nowhere else', () => {
    fails('CHAIN(xEvent, timestamp, [A: WHAT(true), A: WHAT(true)])', 'CHAIN step label A is used twice', 1, 42);
    fails(
      'CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(<= 1 hours after B), B: WHAT(true)])',
      'WHEN can only refer to an earlier chain step; B is not before this step',
      1,
      63,
    );
    fails('CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(after A)])', 'B is not before'.replace('B', 'A'), 1, 52);
    fails('CHAIN(xEvent, timestamp, [A: WHAT(true), B: WHAT(A = now)])', 'unknown field xEvent.A', 1, 50);
    ok('CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(today), B: WHAT(true) WHEN(between A and now)])');
  });

  it('requires a boolean segment definition, while check accepts any type', () => {
    fails('loyalty.points + 1', 'a segment definition must be a boolean expression, but this one is number', 1, 1);
    const source = 'loyalty.points + 1';
    expect(check(parse(source), source, options).type).toEqual({ kind: 'number' });
    expect(() => checkDefinition(parse(source), source, options)).toThrow(PqlError);
  });

  it('gives every expression node a type', () => {
    const c = ok(
      'let V = (xEvent[timestamp occurs <= 2 days before now and productListItems[SKU in ["a", "b"]].count() > 0 and ^.loyalty.tier = "x"]) in ' +
        '(V.count() > 1 and exists E from V where E.commerce.order.priceTotal * 2 > loyalty.points) and ' +
        'CHAIN(xEvent, timestamp, [A: WHAT(eventType like "v%") WHEN(today), B: WHAT(not channel.isNull()) WHEN(between A and now)]) and ' +
        'if(inSegment("vip"), -1, age(person.birthDate)) < currentYear() and $1.createdAt occurs last week',
    );
    let count = 0;
    walk(c.ast, (node) => {
      count++;
      expect(c.types.has(node), `${node.kind} at column ${node.loc.column}`).toBe(true);
    });
    expect(count).toBeGreaterThan(60);
  });

  it('names xEvent in messages', () => {
    fails('xEvent.startsWith("a")', 'startsWith() applies to a string, but xEvent (array<object>) is not one', 1, 8);
  });

  it('fills types for every expression node and eligibility', () => {
    const c = ok('xEvent[timestamp occurs today].count() > 0 and loyalty.points > 1');
    expect(typeOf(c, (n) => n.kind === 'XEvent')).toBe('array<object>');
    expect(typeOf(c, (n) => n.kind === 'TimeWord')).toBe('datetime');
    expect(typeOf(c, (n) => n.kind === 'Occurs')).toBe('boolean');
    expect(c.eligibility).toEqual({ batch: true, streaming: true, edge: true, reasons: [] });
    expect(c.source).toBe('xEvent[timestamp occurs today].count() > 0 and loyalty.points > 1');
  });
});

describe('every function and method of docs/pql.md §5 checks', () => {
  const passing: [string, string][] = [
    ['isNull', 'person.birthDate.isNull()'],
    ['isNotNull', 'person.name.isNotNull()'],
    ['if', 'if(loyalty.tier = "gold", 2, 1) = 2'],
    ['let', 'let S = (xEvent.sum(commerce.order.priceTotal)) in (S > 100 and S < 1000)'],
    ['like', 'person.name.firstName like "J_n%"'],
    ['startsWith', 'person.name.firstName.startsWith("Jo", false)'],
    ['endsWith', 'person.name.firstName.endsWith("n")'],
    ['contains', 'personalEmail.address.contains("@example", true)'],
    ['equals', 'loyalty.tier.equals("GOLD", false)'],
    ['notEqualTo', 'loyalty.tier.notEqualTo("gold")'],
    ['doesNotStartWith', 'homeAddress.postalCode.doesNotStartWith("9")'],
    ['doesNotEndWith', 'homeAddress.city.doesNotEndWith("holm", false)'],
    ['doesNotContain', 'mobilePhone.number.doesNotContain("555")'],
    ['matches', 'personalEmail.address.matches("(?i)^[a-z]+@example\\\\.com$")'],
    ['regexGroup', 'personalEmail.address.regexGroup("@(.*)$", 1) = "example.com"'],
    ['length', 'person.name.lastName.length() > 3'],
    ['lower', 'homeAddress.city.lower() = "stockholm"'],
    ['upper', 'homeAddress.countryCode.upper() = "SE"'],
    ['in', 'homeAddress.countryCode in ["SE", "NO"]'],
    ['notIn', 'loyalty.points notIn [1, 4, 7]'],
    ['includes', 'preferences.categories.includes("shoes")'],
    ['intersects', 'preferences.categories.intersects(["shoes", "bags"])'],
    ['subsetOf', 'preferences.categories.subsetOf(["shoes", "bags"])'],
    ['supersetOf', 'preferences.categories.supersetOf(["shoes"])'],
    ['intersection', 'preferences.categories.intersection(["shoes"]).count() = 1'],
    ['distinct', 'preferences.categories.distinct().count() > 1'],
    ['count', 'xEvent.count() >= 3'],
    ['sum', 'xEvent.sum(commerce.order.priceTotal) > 100 and _tenant.scores.sum() > 1'],
    ['average', 'xEvent.average(commerce.order.priceTotal) > 10'],
    ['min', 'xEvent[eventType = "buy"].min(commerce.order.priceTotal) > 1'],
    ['max', '_tenant.scores.max() < 100'],
    ['head', 'xEvent.head().eventType = "signup"'],
    ['topN', 'xEvent.topN(commerce.order.priceTotal, 3).count() = 3'],
    ['bottomN', '_tenant.visits.bottomN(at, 1).head().page = "/"'],
    ['get', '_tenant.attrs.get("visits") > 3'],
    ['keys', '_tenant.attrs.keys().includes("visits")'],
    ['values', '_tenant.attrs.values().max() > 3'],
    ['getYear', 'person.birthDate.getYear() = 1990'],
    ['getMonth', 'person.birthDate.getMonth() = currentMonth()'],
    ['getDayOfMonth', 'person.birthDate.getDayOfMonth() = currentDayOfMonth()'],
    ['currentYear', 'currentYear() - person.birthDate.getYear() > 18'],
    ['age', 'age(person.birthDate) >= 18'],
    ['date', 'person.birthDate < date(2000, 1, 1) and loyalty.joinDate > date("2020-01-01")'],
    ['datetime', 'createdAt > datetime("2024-03-14T10:00:00Z")'],
    ['occurs', 'loyalty.joinDate occurs this month or createdAt occurs = 3 days before today'],
    ['filter', 'xEvent[productListItems[category = "shoes"].count() > 0].count() > 0'],
    ['exists method', 'xEvent[productListItems.exists(name.equals("X", false))].count() > 0'],
    ['forall method', 'xEvent.forall(channel = "web")'],
    ['exists', 'exists E from xEvent where E.eventType = "buy"'],
    ['forall', 'forall E from xEvent : E.channel = "web"'],
    ['select', '(select E from xEvent where E.eventType = "buy").count() > 1'],
    ['aggregate', '(average E.commerce.order.priceTotal over E from xEvent where E.eventType = "buy") > 20'],
    ['^', 'xEvent[^.loyalty.tier = "gold"].count() > 0'],
    [
      'CHAIN',
      'not CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "b") WHEN(<= 1 hours after A)])',
    ],
    ['inSegment', 'inSegment("vip")'],
  ];
  it.each(passing)('%s', (_name, source) => {
    expect(ok(source).type).toEqual({ kind: 'boolean' });
  });
});

describe('map, groupBy and array equality', () => {
  const value = (source: string) => check(parse(source), source, options);

  it('types them and runs them as forms both engines know', () => {
    expect(typeToString(value('_tenant.visits.map(page)').type)).toBe('array<string>');
    expect(print(value('_tenant.visits.map(page)').ast)).toBe('_tenant.visits.page');
    expect(typeToString(value('_tenant.visits.groupBy(page)').type)).toBe('map<array<object>>');
    expect(print(ok('_tenant.visits.groupBy(page).keys().count() > 1').ast)).toBe(
      '_tenant.visits.page.distinct().count() > 1',
    );
    expect(print(ok('_tenant.visits.groupBy(page).get("home").count() > 1').ast)).toBe(
      '_tenant.visits[page = "home"].count() > 1',
    );
    expect(print(ok('_tenant.tags = ["a", "b"]').ast)).toBe(
      '_tenant.tags.subsetOf(["a", "b"]) and ["a", "b"].subsetOf(_tenant.tags)',
    );
    expect(print(ok('_tenant.tags != []').ast)).toBe(
      '_tenant.tags.subsetOf(_tenant.tags) and [].subsetOf([]) and not (_tenant.tags.subsetOf([]) and [].subsetOf(_tenant.tags))',
    );
  });

  it('refuses what they do not define, saying what to write', () => {
    expect(typeError('_tenant.visits = _tenant.visits').message).toContain(
      '= compares two arrays of values of one type as sets',
    );
    expect(typeError('_tenant.tags = _tenant.scores').message).toContain('compares two arrays of values of one type');
    expect(typeError('_tenant.visits.map().count() > 0').message).toBe(
      'map() takes one argument: the path of a field of each item (orders.map(price)) or a lambda (orders.map(o => o.price * o.quantity))',
    );
    expect(typeError('_tenant.scores.map(x).count() > 0').message).toContain('map() needs an array of objects');
    expect(typeError('_tenant.visits.groupBy(at).keys().count() > 0').message).toContain(
      'groupBy() needs a string field of each item (the keys of a map are strings), but .at is datetime',
    );
    expect(typeError('_tenant.visits.groupBy(page).head().count() > 0').message).toBe(
      'read a groupBy with .keys(), .get("key") or .values()',
    );
    expect(typeError('_tenant.visits.groupBy(page).get(person.name.firstName).count() > 0').message).toContain(
      'read a groupBy with .keys(), .get("key") (a string literal) or .values()',
    );
    expect(typeError('let G = (_tenant.visits.groupBy(page)) in (G.keys().count() > 0)').message).toBe(
      'read a groupBy with .keys(), .get("key") or .values()',
    );
  });
});

describe('lambdas as per-item arguments (docs/pql.md §5)', () => {
  const value = (source: string) => check(parse(source), source, options);

  it('binds the name to each item; bare names are still fields of the item', () => {
    const c = ok('_tenant.visits.exists(v => v.page = "home" and at occurs today)');
    expect(print(c.ast)).toBe('_tenant.visits.exists(v => v.page = "home" and at occurs today)');
    expect(c.referencedFields).toEqual(['_tenant.visits', '_tenant.visits.at', '_tenant.visits.page']);
    expect(print(ok('_tenant.visits.filter(v => v.page = "home").count() > 1').ast)).toBe(
      '_tenant.visits[v => v.page = "home"].count() > 1',
    );
    expect(typeToString(value('_tenant.visits.topN(v => v.at, 2)').type)).toBe('array<object>');
    expect(typeToString(value('xEvent.sum(e => e.commerce.order.priceTotal * 2)').type)).toBe('number');
    // `^` still reaches the scope around the method.
    ok('_tenant.visits.exists(v => v.page = ^.person.name.firstName)');
  });

  it('runs over arrays of values, whose items have no fields', () => {
    expect(typeToString(value('_tenant.tags.map(t => t.lower())').type)).toBe('array<string>');
    ok('_tenant.tags.exists(t => t.startsWith("a"))');
    ok('_tenant.scores.filter(s => s > 2).count() = 1');
    expect(typeError('_tenant.tags.exists(t => length > 2)').message).toContain('unknown field _tenant.tags.length');
  });

  it('is an argument read per item, nowhere else', () => {
    fails('if(x => true, 1, 2) > 1', 'a lambda (x => …) can only be the argument a method reads once per item', 1, 4);
    fails('_tenant.tags.includes(t => "a")', 'a lambda (t => …) can only be the argument', 1, 23);
    fails('person.name.firstName.startsWith(n => "a")', 'a lambda (n => …) can only be the argument', 1, 34);
  });

  it('a.map(x => value): the values of any expression, an array of single values', () => {
    const c = value('_tenant.visits.map(v => v.page + "!")');
    expect(typeToString(c.type)).toBe('array<string>');
    expect(print(c.ast)).toBe('_tenant.visits.map(v => v.page + "!")');
    expect(typeToString(value('_tenant.visits.map(page + "!")').type)).toBe('array<string>');
    expect(typeToString(value('_tenant.visits.map(v => v.at)').type)).toBe('array<datetime>');
    // A path of the item is the projection both engines already run.
    expect(print(value('_tenant.visits.map(v => v.page)').ast)).toBe('_tenant.visits.page');
    ok('_tenant.visits.map(v => v.page.length()).sum() > 3');
    ok('"home" in _tenant.visits.map(v => v.page.lower())');
    fails('_tenant.visits.map(v => if(true, v.pages, [])).count() > 0', 'map() makes an array of single values', 1, 25);
  });

  it('mapEntry(key, value) builds a map in a map lambda, read like any map', () => {
    const m = value('xEvent.map(e => mapEntry(e.eventType, e.timestamp))');
    expect(typeToString(m.type)).toBe('map<datetime>');
    expect(typeToString(value('xEvent.map(e => mapEntry(e.eventType, e.timestamp)).get("x")').type)).toBe('datetime');
    expect(typeToString(value('xEvent.map(e => mapEntry(e.eventType, e.timestamp)).keys()').type)).toBe(
      'array<string>',
    );
    expect(
      typeToString(value('xEvent.map(e => mapEntry(e.eventType, e.commerce.order.priceTotal)).values()').type),
    ).toBe('array<number>');
    ok('xEvent.map(e => mapEntry(e.eventType, e.commerce.order.priceTotal)).get(person.name.firstName) > 1');
    ok('xEvent.map(e => mapEntry(e.eventType, e.timestamp)).keys().count() > 1');
  });

  it('mapEntry anywhere else is an error saying where it goes', () => {
    const where =
      'mapEntry(key, value) is one entry of a map: it can only be the body of a map lambda, e.g. xEvent.map(e => mapEntry(e.commerce.order.purchaseID, e.timestamp))';
    fails('mapEntry("a", 1).get("a") = 1', where, 1, 1);
    fails('xEvent.map(mapEntry(eventType, timestamp)).keys().count() > 0', where, 1, 12);
    fails('xEvent.map(e => if(true, mapEntry(e.eventType, 1), mapEntry("b", 2))).keys().count() > 0', where, 1, 26);
    fails('xEvent.exists(e => mapEntry(e.eventType, 1))', where, 1, 20);
    fails(
      'xEvent.map(e => mapEntry(e.eventType, 1)).count() > 0',
      'a map built with mapEntry is read with .get("key"), .keys() or .values()',
      1,
      1,
    );
    fails(
      'xEvent.map(e => mapEntry(e.timestamp, 1)).keys().count() > 0',
      'the key of mapEntry() must be a string',
      1,
      26,
    );
    fails(
      'xEvent.map(e => mapEntry(e.eventType, e.productListItems)).keys().count() > 0',
      'the value of mapEntry() must be a single value',
      1,
      39,
    );
    fails('xEvent.map(e => mapEntry(e.eventType)).keys().count() > 0', 'mapEntry() takes 2 arguments', 1, 17);
  });

  it('groupBy(path).values(): the groups, counted or read one by one through a lambda', () => {
    expect(typeToString(value('_tenant.visits.groupBy(page).values()').type)).toBe('array<array<object>>');
    expect(print(ok('_tenant.visits.groupBy(page).values().count() > 1').ast)).toBe(
      '_tenant.visits.page.distinct().count() > 1',
    );
    const c = ok('_tenant.visits.groupBy(page).values().exists(g => g.count() > 2)');
    expect(c.referencedFields).toEqual(['_tenant.visits', '_tenant.visits.page']);
    expect(typeToString(value('_tenant.visits.groupBy(v => v.page).values().map(g => g.count())').type)).toBe(
      'array<number>',
    );
    ok('_tenant.visits.groupBy(page).values().max(g => g[at occurs today].count()) >= 2');
    const reads =
      'the groups of a groupBy (.values()) are read with .count() or with a lambda over each group: .map(g => g.count())';
    fails('_tenant.visits.groupBy(page).values().head().count() > 0', reads, 1, 1);
    fails('_tenant.visits.groupBy(page).values().exists(count() > 2)', reads, 1, 1);
    fails('_tenant.visits.groupBy(page).values()[true].count() > 0', reads, 1, 1);
  });
});
