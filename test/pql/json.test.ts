import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ExpressionNode } from '../../src/pql/language/ast.js';
import { PqlError } from '../../src/pql/language/errors.js';
import { fromJson, type PqlJson, toJson } from '../../src/pql/language/json.js';
import { parse } from '../../src/pql/language/parser.js';
import { print } from '../../src/pql/language/printer.js';
import { walk } from '../../src/pql/language/visitor.js';

const kitchenSink = readFileSync(new URL('./fixtures/kitchen-sink.pql', import.meta.url), 'utf8');
const withoutLoc = (node: ExpressionNode) => JSON.parse(JSON.stringify(node, (k, v) => (k === 'loc' ? undefined : v)));
const viaJson = (node: ExpressionNode) => fromJson(JSON.parse(JSON.stringify(toJson(node))));

/** A bare name that is not the profile's (a variable, an item's field): no `object`. */
const field = (fieldName: string, object?: PqlJson | null): PqlJson =>
  object === undefined ? { nodeType: 'fieldLookup', fieldName } : { nodeType: 'fieldLookup', fieldName, object };
const PROFILE: PqlJson = { nodeType: 'parameterReference', position: 1 };
/** A field of the profile, as the documentation writes it: a lookup on parameter 1. */
const prof = (fieldName: string): PqlJson => field(fieldName, PROFILE);
const str = (value: string): PqlJson => ({ nodeType: 'literal', literalType: 'String', value });
const num = (value: number): PqlJson => ({ nodeType: 'literal', literalType: 'Number', value });
const fn = (fnName: string, ...params: PqlJson[]): PqlJson => ({ nodeType: 'fnApply', fnName, params });

function jsonError(json: unknown): PqlError {
  try {
    fromJson(json);
  } catch (error) {
    if (error instanceof PqlError) return error;
    throw error;
  }
  throw new Error('expected fromJson to fail');
}

describe('toJson / fromJson', () => {
  it('round-trips the kitchen sink: same JSON, same text but for $1. on profile fields', () => {
    const tree = parse(kitchenSink);
    const back = viaJson(tree);
    expect(toJson(back)).toEqual(toJson(tree));
    // `$1.person` and `person` are one JSON node (a lookup on parameter 1), read back bare.
    // (`$1.xEvent` is a profile field named xEvent, so bare it keeps its back-quotes.)
    expect(print(back)).toBe(print(tree).replaceAll('$1.xEvent', '`xEvent`').replaceAll('$1.', ''));
    expect(withoutLoc(viaJson(back))).toEqual(withoutLoc(back));
  });

  it('keeps $1. where a bare name would read the item or a variable', () => {
    for (const source of [
      'orders[price > $1.minPrice]',
      'orders.sum(price > $1.minPrice)',
      'let minPrice = (1) in ($1.minPrice > minPrice)',
      'exists E from xEvent where E.a = $1.E',
      'CHAIN(xEvent, timestamp, [A: WHAT(eventType = $1.eventType)])',
    ]) {
      const tree = parse(source);
      expect(print(viaJson(tree))).toBe(print(tree));
    }
    // Inside the filter, `price` is the item's: no object; `$1.minPrice` the profile's.
    expect(toJson(parse('orders[price > $1.minPrice]'))).toEqual(
      fn('[]', prof('orders'), fn('>', field('price'), prof('minPrice'))),
    );
  });

  it('gives every node read from JSON the empty location', () => {
    const locs = new Set<string>();
    walk(viaJson(parse(kitchenSink)), (node) => {
      locs.add(JSON.stringify(node.loc));
    });
    expect([...locs]).toEqual([JSON.stringify({ offset: 0, length: 0, line: 1, column: 1 })]);
  });

  it('writes the docs/pql.md example with the four node types', () => {
    expect(toJson(parse('homeAddress.countryCode in ["SE", "NO"] and $1.age >= -18'))).toEqual(
      fn(
        'and',
        fn('in', field('countryCode', prof('homeAddress')), {
          nodeType: 'literal',
          literalType: 'List',
          value: [str('SE'), str('NO')],
        }),
        fn('>=', prof('age'), fn('negate', num(18))),
      ),
    );
  });

  it.each([
    ['xEvent[a].count()', fn('.count', fn('[]', fn('xEvent'), field('a')))],
    ['^^.tier', fn('^', num(2), str('tier'))],
    ['date(2024, 3)', fn('date', num(2024), num(3))],
    ['`and`(1)', fn('call', str('and'), num(1))],
    ['`.x`()', fn('call', str('.x'))],
    ['x like "a%"', fn('like', prof('x'), str('a%'))],
    ['now', { nodeType: 'literal', literalType: 'TimeWord', value: 'now' }],
    [
      'true != null',
      fn(
        '!=',
        { nodeType: 'literal', literalType: 'Boolean', value: true },
        { nodeType: 'literal', literalType: 'Null', value: null },
      ),
    ],
    [
      't occurs 3 days before today',
      fn(
        'occurs',
        prof('t'),
        fn('relative', { nodeType: 'literal', literalType: 'Null', value: null }, num(3), str('day'), str('before'), {
          nodeType: 'literal',
          literalType: 'TimeWord',
          value: 'today',
        }),
      ),
    ],
    [
      't occurs < 3 days from x',
      fn('occurs', prof('t'), fn('relative', str('<'), num(3), str('day'), str('from'), prof('x'))),
    ],
    [
      't occurs on x',
      fn('occurs', prof('t'), fn('on', prof('x'), { nodeType: 'literal', literalType: 'Boolean', value: true })),
    ],
    ['t occurs last week', fn('occurs', prof('t'), fn('last', str('week')))],
    ['t occurs after x', fn('occurs', prof('t'), fn('after', prof('x')))],
    ['t occurs between a and b', fn('occurs', prof('t'), fn('between', prof('a'), prof('b')))],
    [
      'exists E from x, F from y where z',
      fn('exists', fn('from', str('E'), prof('x')), fn('from', str('F'), prof('y')), prof('z')),
    ],
    ['max E.v over E from x where z', fn('max', field('v', field('E')), fn('from', str('E'), prof('x')), prof('z'))],
    ['let V = (1) in (V)', fn('let', str('V'), num(1), field('V'))],
    [
      'CHAIN(xEvent, ts, [A: WHAT(a), B: WHAT(b) WHEN(after A)])',
      fn(
        'chain',
        fn('xEvent'),
        str('ts'),
        fn('step', str('A'), field('a')),
        fn('step', str('B'), field('b'), fn('after', field('A'))),
      ),
    ],
  ])('%s', (source, json) => {
    expect(toJson(parse(source))).toEqual(json);
    expect(print(fromJson(json))).toBe(print(parse(source)));
  });

  it.each([
    [null, '$', 'expected a node object'],
    [[], '$', 'expected a node object'],
    [{ nodeType: 'variable' }, '$.nodeType', 'expected "fnApply", "fieldLookup", "parameterReference" or "literal"'],
    [{ nodeType: 'fieldLookup', object: null }, '$.fieldName', 'expected a string'],
    [
      { nodeType: 'fieldLookup', fieldName: '', object: null },
      '$.fieldName',
      'expected a non-empty name without line breaks',
    ],
    [{ nodeType: 'fieldLookup', fieldName: 'a', object: null, loc: 1 }, '$', 'unexpected property "loc"'],
    [
      field('a', field('b', { nodeType: 'literal', literalType: 'Number', value: -5 })),
      '$.object.object.value',
      'expected a finite non-negative number (write -5 as negate of 5)',
    ],
    [{ nodeType: 'literal', literalType: 'String', value: 5 }, '$.value', 'expected a string'],
    [
      { nodeType: 'literal', literalType: 'Date', value: 5 },
      '$.literalType',
      'expected "String", "Number", "Boolean", "Null", "TimeWord" or "List"',
    ],
    [{ nodeType: 'literal', literalType: 'List', value: [num(1), 'x'] }, '$.value[1]', 'expected a node object'],
    [{ nodeType: 'parameterReference', position: 1.5 }, '$.position', 'expected a non-negative integer'],
    [{ nodeType: 'fnApply', fnName: 'and', params: {} }, '$.params', 'expected an array'],
    [fn('and'), '$.params', '"and" takes at least 1 parameters, got 0'],
    [fn('not', fn('exists', field('x'))), '$.params[0].params', '"exists" takes at least 2 parameters, got 1'],
    [fn('exists', field('x'), field('y')), '$.params[0].nodeType', 'expected "fnApply"'],
    [
      fn('occurs', field('t'), fn('soon', field('x'))),
      '$.params[1].fnName',
      'expected one of "relative", "before", "after", "on", "this", "last", "next", "between"',
    ],
    [
      fn('occurs', field('t'), fn('relative', str('=='), num(1), str('day'), str('before'), field('x'))),
      '$.params[1].params[0]',
      'expected one of "=", "!=", "<", "<=", ">", ">="',
    ],
    [
      fn('occurs', field('t'), fn('last', str('days'))),
      '$.params[1].params[0]',
      'expected one of "millisecond", "second", "minute", "hour", "day", "week", "month", "year"',
    ],
    [fn('chain', fn('xEvent'), str('ts')), '$.params', '"chain" takes at least 3 parameters, got 2'],
    [
      fn('call', str('date')),
      '$.params[0]',
      'write a call of "date" as fnName "date"; "call" is only for reserved names',
    ],
    [fn('^', num(0), str('x')), '$.params[0]', 'expected a depth of 1 or more'],
  ])('rejects %j at %s', (json, path, reason) => {
    const error = jsonError(json);
    expect(error.code).toBe('PQL_SYNTAX_ERROR');
    expect(error.message).toBe(`Invalid pql/json at ${path}: ${reason}`);
    expect(error.loc).toEqual({ offset: 0, length: 0, line: 1, column: 1 });
  });

  it('rejects trees that have no text form', () => {
    const aggregate = fn(
      'sum',
      { nodeType: 'literal', literalType: 'List', value: [] },
      fn('from', str('E'), field('x')),
      field('y'),
    );
    expect(jsonError(aggregate).message).toMatch(/^Invalid pql\/json at \$: the tree has no PQL text form/);
    let deep: PqlJson = field('a');
    for (let i = 0; i < 100; i++) deep = fn('not', deep);
    expect(jsonError(deep).message).toContain('Expression nests deeper than 64 levels');
  });

  it('rejects very deep JSON with a PqlError, not a stack overflow', () => {
    let deep: PqlJson = field('a');
    for (let i = 0; i < 100_000; i++) deep = fn('not', deep);
    expect(jsonError(deep).message).toMatch(/nodes nest more than 512 deep/);
  });
});

/**
 * Every PQL tree the commercial documentation prints. The segmentation API's conversion example
 * is what our writer must produce word for word; the source-filter examples use a looser form
 * (no `object` on a field, literals without `literalType`, one-operand `and`, `NOT`, `isNull`
 * applied as a function), which we read and then write in the conversion example's form.
 */
describe('the documented pql/json trees', () => {
  const CONVERSIONS = 'https://experienceleague.adobe.com/en/docs/experience-platform/segmentation/api/pql-conversions';
  const FILTERS = 'https://experienceleague.adobe.com/en/docs/experience-platform/sources/api-tutorials/filter';
  const lit = (value: unknown) => ({ nodeType: 'literal', value });
  const apply = (fnName: string, ...params: unknown[]) => ({ nodeType: 'fnApply', fnName, params });
  const col = (fieldName: string) => ({ nodeType: 'fieldLookup', fieldName });
  const roundTrip = (json: unknown) => {
    const text = print(fromJson(json));
    const again = toJson(parse(text));
    expect(toJson(fromJson(JSON.parse(JSON.stringify(again))))).toEqual(again);
    expect(print(fromJson(again))).toBe(text);
    return { text, again };
  };

  it(`writes workAddress.country = "US" exactly as the conversion example (${CONVERSIONS})`, () => {
    // The response's expression.value, a JSON string, as printed on the page.
    const documented = JSON.parse(
      '{"nodeType":"fnApply","fnName":"=","params":[{"nodeType":"fieldLookup","fieldName":"country","object":{"nodeType":"fieldLookup","fieldName":"workAddress","object":{"nodeType":"parameterReference","position":1}}},{"nodeType":"literal","literalType":"String","value":"US"}]}',
    );
    expect(toJson(parse('workAddress.country = "US"'))).toEqual(documented);
    expect(JSON.stringify(toJson(parse('workAddress.country = "US"')))).toBe(JSON.stringify(documented));
    const { text, again } = roundTrip(documented);
    expect(text).toBe('workAddress.country = "US"');
    expect(again).toEqual(documented);
  });

  it.each([
    ['the filtering condition', apply('=', col('city'), lit('DDN')), 'city = "DDN"'],
    [
      'the preview filter (Base64 in the request)',
      apply('and', apply('like', col('city'), lit('M%'))),
      'city like "M%"',
    ],
    ['a singular condition', apply('like', col('firstname'), lit('%s')), 'firstname like "%s"'],
    [
      'the in operator',
      apply('and', apply('in', col('firstname'), lit(['Ramen', 'John']))),
      'firstname in ["Ramen", "John"]',
    ],
    ['the isNull operator', apply('isNull', col('complaint_type')), 'complaint_type.isNull()'],
    ['the NOT operator', apply('NOT', apply('isNull', col('complaint_type'))), 'not complaint_type.isNull()'],
    [
      'nested conditions',
      apply(
        'and',
        apply('>=', col('age'), lit(20)),
        apply('<=', col('age'), lit(30)),
        apply('or', apply('!=', col('city'), lit('PUD')), apply('=', col('joinedDate'), lit('2020-04-22'))),
      ),
      'age >= 20 and age <= 30 and (city != "PUD" or joinedDate = "2020-04-22")',
    ],
  ])(`reads the source filter's %s (${FILTERS})`, (_, documented, expected) => {
    const { text, again } = roundTrip(documented);
    expect(text).toBe(expected);
    // Written back in the segmentation form: fields on parameter 1, typed literals.
    expect(JSON.stringify(again)).toContain('"object":{"nodeType":"parameterReference","position":1}');
    expect(JSON.stringify(again)).not.toContain('"object":null');
  });

  it('reads what it wrote before: object null for a bare name, $1 as a parameter lookup', () => {
    const earlier = fn(
      'and',
      fn('=', { nodeType: 'fieldLookup', fieldName: 'country', object: null }, str('US')),
      fn('.exists', field('orders', null), fn('>', field('price', null), field('minPrice', PROFILE))),
    );
    expect(print(fromJson(earlier))).toBe('country = "US" and orders.exists(price > $1.minPrice)');
  });

  it('refuses an untyped literal that is not a JSON value it can type', () => {
    expect(jsonError(lit({ a: 1 })).message).toBe(
      'Invalid pql/json at $.value: expected a string, number, boolean, null or array (or give literalType)',
    );
    expect(print(fromJson(lit(-2.5)))).toBe('-2.5');
  });
});

describe('map and groupBy read their argument on each item', () => {
  it('writes the path of map(…) / groupBy(…) without object, the receiver on the profile', () => {
    expect(toJson(parse('orders.groupBy(storeId).keys()'))).toEqual(
      fn('.keys', fn('.groupBy', prof('orders'), field('storeId'))),
    );
    expect(toJson(parse('numbers.map(square)'))).toEqual(fn('.map', prof('numbers'), field('square')));
    expect(print(fromJson(toJson(parse('numbers.map($1.square)'))))).toBe('numbers.map($1.square)');
  });

  it('writes a lambda as `lambda` (its name, its body), the body reading the item', () => {
    const lambda = toJson(parse('orders.map(o => o.price * quantity)'));
    expect(lambda).toEqual(
      fn('.map', prof('orders'), fn('lambda', str('o'), fn('*', field('price', field('o')), field('quantity')))),
    );
    expect(print(fromJson(lambda))).toBe('orders.map(o => o.price * quantity)');
    const entries = 'xEvent.map(e => mapEntry(e.commerce.order.purchaseID, e.timestamp)).get("p1")';
    expect(toJson(parse(entries))).toEqual(
      fn(
        '.get',
        fn(
          '.map',
          fn('xEvent'),
          fn(
            'lambda',
            str('e'),
            fn(
              'mapEntry',
              field('purchaseID', field('order', field('commerce', field('e')))),
              field('timestamp', field('e')),
            ),
          ),
        ),
        str('p1'),
      ),
    );
    for (const source of [
      entries,
      'orders.groupBy(storeId).values().map(g => g.count())',
      'orders.exists((o) => o.price > $1.minPrice and ^.x = 1)',
      'tags.filter(`and` => `and`.lower() = "a").count() > 0',
    ]) {
      const tree = parse(source);
      expect(withoutLoc(viaJson(tree))).toEqual(withoutLoc(tree));
    }
    // A Call named lambda needs the call form, so the two never mix.
    expect(toJson(parse('lambda(1)'))).toEqual(fn('call', str('lambda'), num(1)));
    expect(print(fromJson(fn('call', str('lambda'), num(1))))).toBe('lambda(1)');
  });

  it('refuses a malformed lambda, or one that has no text form', () => {
    expect(jsonError(fn('.map', prof('a'), fn('lambda', str('o')))).message).toBe(
      'Invalid pql/json at $.params[1].params: "lambda" takes 2 parameters, got 1',
    );
    expect(jsonError(fn('.map', prof('a'), fn('lambda', num(1), num(2)))).message).toBe(
      'Invalid pql/json at $.params[1].params[0]: expected a String literal',
    );
    expect(jsonError(fn('=', fn('lambda', str('o'), num(2)), num(1))).message).toContain('has no PQL text form');
  });
});
